using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.EndToEnd;

public sealed class RedisClusterSessionFoundationTests(RedisClusterDriverFixture driver) : SessionFoundationTests<RedisClusterDriverFixture>(driver);
