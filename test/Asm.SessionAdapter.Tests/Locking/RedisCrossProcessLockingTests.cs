using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class RedisCrossProcessLockingTests(RedisDriverFixture driver) : CrossProcessLockingTests<RedisDriverFixture>(driver);
