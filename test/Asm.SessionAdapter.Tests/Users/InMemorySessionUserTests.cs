using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Users;

public sealed class InMemorySessionUserTests(InMemoryDriverFixture driver) : SessionUserTests<InMemoryDriverFixture>(driver);
