using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class RedisClusterCrossProcessLockingTests(RedisClusterDriverFixture driver) : CrossProcessLockingTests<RedisClusterDriverFixture>(driver);
