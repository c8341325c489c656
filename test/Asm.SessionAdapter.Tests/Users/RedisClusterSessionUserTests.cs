using Asm.Testing.Drivers;

namespace Asm.SessionAdapter.Tests.Users;

public sealed class RedisClusterSessionUserTests(RedisClusterDriverFixture driver) : SessionUserTests<RedisClusterDriverFixture>(driver)
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
}
