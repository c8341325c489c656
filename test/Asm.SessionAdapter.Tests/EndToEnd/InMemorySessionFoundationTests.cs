using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.EndToEnd;

public sealed class InMemorySessionFoundationTests(InMemoryDriverFixture driver) : SessionFoundationTests<InMemoryDriverFixture>(driver);
