using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Identity;

/// <summary>The in-memory driver keeps objects, not bytes: the identity tests without the stored-bytes checks.</summary>
public sealed class InMemorySessionIdentityTests(InMemoryDriverFixture driver) : SessionIdentityTests<InMemoryDriverFixture>(driver);
