using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class FileSystemSessionLockingTests(FileSystemDriverFixture driver) : SessionLockingTests<FileSystemDriverFixture>(driver);
