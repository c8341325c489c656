using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class RedisClusterSessionLockingTests(RedisClusterDriverFixture driver) : SessionLockingTests<RedisClusterDriverFixture>(driver);
