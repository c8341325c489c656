using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class InMemorySessionLockingTests(InMemoryDriverFixture driver) : SessionLockingTests<InMemoryDriverFixture>(driver);
