using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.EndToEnd;

public sealed class RedisSessionFoundationTests(RedisDriverFixture driver) : SessionFoundationTests<RedisDriverFixture>(driver);
