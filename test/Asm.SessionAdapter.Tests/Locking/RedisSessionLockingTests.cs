using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class RedisSessionLockingTests(RedisDriverFixture driver) : SessionLockingTests<RedisDriverFixture>(driver);
