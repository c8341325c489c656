using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Users;

public sealed class RedisSessionUserTests(RedisDriverFixture driver) : SessionUserTests<RedisDriverFixture>(driver)
{
    [Fact]
    public Task TwoInstances_ReportEachEndExactlyOnce() => TwoInstancesOnOneStorage_ReportEachEndExactlyOnce();

    [Fact]
    public Task ClockTwoMinutesAhead_SweepsASession_ItIsServedNowhereAfterItsEndWasReported() =>
        InstancesWhoseClocksDisagree_OneSweepsASession_ItIsServedNowhereAfterItsEndWasReported();

    [Fact]
    public Task ClockTwoMinutesAhead_LogsTheUserOutEverywhere_TheSessionTheOtherStillServesEnds() =>
        InstancesWhoseClocksDisagree_OneLogsTheUserOutEverywhere_TheSessionTheOtherStillServesEnds();

    [Fact]
    public Task ClockTwoMinutesAhead_LooksTheSessionUp_TheSessionTheOtherStillServesEnds() =>
        InstancesWhoseClocksDisagree_OneLooksTheSessionUp_TheSessionTheOtherStillServesEnds();

    [Fact]
    public Task SweepOfASessionWhoseIdleExpiryHasALeadingZero_ReportsItsEndWithoutSpinning() =>
        SweepOfASessionWhoseIdleExpiryNeverMatches_ReportsItsEndWithoutSpinning(async (scope, id) =>
        {
            var key = $"{scope}:s:{{{id}}}";
            var idleExpiry = await Driver.Server.ExecuteTextAsync("HGET", key, "ie");
            await Driver.Server.ExecuteAsync("HSET", key, "ie", "0" + idleExpiry);
        });
}
