using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Users;

public sealed class FileSystemSessionUserTests(FileSystemDriverFixture driver) : SessionUserTests<FileSystemDriverFixture>(driver)
{
    [Fact]
    public Task TwoInstances_ReportEachEndExactlyOnce() => TwoInstancesOnOneStorage_ReportEachEndExactlyOnce();

    [Fact]
    public Task ABindThatFailsAfterItsSessionStep_UserIndexDirectoryAFile_IsBoundByTheNextTry() => ABindThatFailsAfterItsSessionStep_IsBoundByTheNextTry(
        scope =>
        {
            // A file where the user index directory goes: writing an index fails, the session's own file does not.
            var users = Path.Combine(Driver.DirectoryOf(scope), ".users");
            if (Directory.Exists(users))
            {
                Directory.Delete(users, recursive: true);
            }

            File.WriteAllText(users, "");
        },
        scope => File.Delete(Path.Combine(Driver.DirectoryOf(scope), ".users")));

    [Theory]
    [InlineData("emptied")]
    [InlineData("garbage")]
    [InlineData("cut inside its first id")]
    [InlineData("cut after a line")]
    public Task AUserIndexFileDamaged_LogOutOtherDevices_StillEndsEveryOtherSession(string damage) =>
        AUserIndexDamaged_LogOutOtherDevices_StillEndsEveryOtherSession(async scope =>
        {
            var path = Directory.GetFiles(Path.Combine(Driver.DirectoryOf(scope), ".users")).Single();
            var data = await File.ReadAllBytesAsync(path);
            var firstLine = Array.IndexOf(data, (byte)'\n');
            await File.WriteAllBytesAsync(path, damage switch
            {
                "emptied" => [],
                "garbage" => System.Security.Cryptography.RandomNumberGenerator.GetBytes(data.Length),
                "cut inside its first id" => data[..(firstLine + 5)],
                _ => data[..(Array.IndexOf(data, (byte)'\n', firstLine + 1) + 1)],
            });
        });

    [Fact]
    public Task ClockTwoMinutesAhead_SweepsASession_ItIsServedNowhereAfterItsEndWasReported() =>
        InstancesWhoseClocksDisagree_OneSweepsASession_ItIsServedNowhereAfterItsEndWasReported();

    [Fact]
    public Task ClockTwoMinutesAhead_LogsTheUserOutEverywhere_TheSessionTheOtherStillServesEnds() =>
        InstancesWhoseClocksDisagree_OneLogsTheUserOutEverywhere_TheSessionTheOtherStillServesEnds();

    [Fact]
    public Task ClockTwoMinutesAhead_LooksTheSessionUp_TheSessionTheOtherStillServesEnds() =>
        InstancesWhoseClocksDisagree_OneLooksTheSessionUp_TheSessionTheOtherStillServesEnds();
}
