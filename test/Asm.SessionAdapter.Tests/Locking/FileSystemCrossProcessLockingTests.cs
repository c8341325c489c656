using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Locking;

public sealed class FileSystemCrossProcessLockingTests(FileSystemDriverFixture driver) : CrossProcessLockingTests<FileSystemDriverFixture>(driver);
