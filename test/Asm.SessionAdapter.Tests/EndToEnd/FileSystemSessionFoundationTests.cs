using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.EndToEnd;

public sealed class FileSystemSessionFoundationTests(FileSystemDriverFixture driver) : SessionFoundationTests<FileSystemDriverFixture>(driver);
