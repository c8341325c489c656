using Asm.SessionAdapter.Sessions;

namespace Asm.SessionAdapter.Tests.Sessions;

/// <summary>The values and change set of one request, without HTTP or storage.</summary>
public sealed class SessionChangeSetTests
{
    private static Dictionary<string, byte[]> Loaded() => new(StringComparer.Ordinal) { ["a"] = [1], ["b"] = [2, 2] };

    [Fact]
    public void SetRemoveAndClear_AreSeenByReadsBeforeAnyCommit_AndLeaveTheLoadedValuesAlone()
    {
        var loaded = Loaded();
        var set = new SessionChangeSet();
        set.Reset(loaded);

        set.Remove("a");
        Assert.True(set.TrySet("c", [3], long.MaxValue));

        Assert.False(set.TryGetValue("a", out _));
        Assert.True(set.TryGetValue("c", out var c));
        Assert.Equal([3], c);
        Assert.Equal(["b", "c"], set.Keys.Order(StringComparer.Ordinal));
        set.Clear();
        Assert.Empty(set.Keys);
        Assert.False(set.TryGetValue("b", out _));
        Assert.Equal([1], loaded["a"]);
    }

    [Fact]
    public void TrySet_StoresACopy_AndOverTheSizeLimitChangesNothing()
    {
        var set = new SessionChangeSet();
        set.Reset(Loaded());
        var value = new byte[] { 9 };
        Assert.True(set.TrySet("a", value, maxBytes: 5));
        value[0] = 0;

        Assert.False(set.TrySet("a", [1, 1, 1], maxBytes: 5));
        Assert.False(set.TrySet("new", [1, 1], maxBytes: 5));
        Assert.False(set.TrySet("bb", [], maxBytes: 5));

        Assert.True(set.TryGetValue("a", out var a));
        Assert.Equal([9], a);
        Assert.False(set.TryGetValue("new", out _));
        Assert.Equal(5, set.StoredBytes());
    }

    [Fact]
    public void StartNextDelta_FoldsTheCommittedChangesIntoTheValues_AndLeavesNothingToWrite()
    {
        var set = new SessionChangeSet();
        set.Reset(Loaded());
        set.AddProfile("10.0.0.1|Firefox");
        set.Remove("a");
        Assert.True(set.TrySet("c", [3], long.MaxValue));
        Assert.True(set.HasChanges);

        set.StartNextDelta();

        Assert.False(set.HasChanges);
        Assert.Empty(set.Changes);
        Assert.Empty(set.NewProfiles);
        Assert.Equal(["b", "c"], set.Keys.Order(StringComparer.Ordinal));
        Assert.True(set.TryGetValue("c", out var c));
        Assert.Equal([3], c);
    }

    [Fact]
    public void StartNextDelta_AfterAClear_KeepsOnlyWhatWasSetSince()
    {
        var set = new SessionChangeSet();
        set.Reset(Loaded());
        set.Clear();
        Assert.True(set.TrySet("z", [1], long.MaxValue));

        set.StartNextDelta();

        Assert.False(set.Cleared);
        Assert.Equal(["z"], set.Keys);
    }

    [Fact]
    public void DiscardValueChanges_KeepsProfilesToAdd_DropForgetsThemToo()
    {
        var set = new SessionChangeSet();
        set.Reset(Loaded());
        set.AddProfile("p");
        set.Clear();

        set.DiscardValueChanges();

        Assert.False(set.HasValueChanges);
        Assert.True(set.HasChanges);
        Assert.Equal(["a", "b"], set.Keys.Order(StringComparer.Ordinal));
        set.Drop();
        Assert.False(set.HasChanges);
    }

    [Fact]
    public void WhatACommitWasGiven_NeverChangesAfterwards_LaterChangesGoToACopy()
    {
        var set = new SessionChangeSet();
        set.Reset(Loaded());
        Assert.True(set.TrySet("a", [7], long.MaxValue));
        set.AddProfile("p");
        var changes = set.Changes;
        var profiles = set.NewProfiles;

        Assert.True(set.TrySet("c", [3], long.MaxValue));
        set.Remove("a");
        set.AddProfile("q");

        Assert.Equal(["a"], changes.Keys);
        Assert.Equal([7], changes["a"]);
        Assert.Equal(["p"], profiles);
        Assert.Equal(["a", "c"], set.Changes.Keys.Order(StringComparer.Ordinal));
        Assert.Null(set.Changes["a"]);
        Assert.Equal(["p", "q"], set.NewProfiles);
        set.Clear();
        Assert.Equal(["a"], changes.Keys);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void StoredBytes_KeptAsValuesChange_IsWhatTheValuesTake(int seed)
    {
        // StoredBytes is kept up to date by each change rather than counted over every value on every Set (a request
        // setting 20,000 values took 7 s that way): after any sequence of changes, it is the bytes of what Keys holds.
        var random = new Random(seed);
        var set = new SessionChangeSet();
        var names = new[] { "a", "b", "ключ", "🔑", "long-name-" + new string('x', 40) };
        byte[] Value() => new byte[random.Next(0, 20)];
        Dictionary<string, byte[]> Loaded() => names.Where(_ => random.Next(2) == 0).ToDictionary(n => n, _ => Value(), StringComparer.Ordinal);
        long Expected() => set.Keys.Sum(k => System.Text.Encoding.UTF8.GetByteCount(k) + (set.TryGetValue(k, out var v) ? v!.Length : 0));

        set.Reset(Loaded());
        for (var step = 0; step < 2_000; step++)
        {
            var name = names[random.Next(names.Length)];
            switch (random.Next(10))
            {
                case 0: set.Reset(Loaded()); break;
                case 1: set.Reload(Loaded()); break;
                case 2: set.Remove(name); break;
                case 3 when random.Next(4) == 0: set.Clear(); break;
                case 4: set.DiscardValueChanges(); break;
                case 5: set.StartNextDelta(); break;
                case 6: _ = set.Changes; break;
                case 7: set.TrySet(name, Value(), maxBytes: random.Next(0, 120)); break;
                default: Assert.True(set.TrySet(name, Value(), long.MaxValue)); break;
            }

            if (random.Next(3) == 0)
            {
                Assert.Equal(Expected(), set.StoredBytes());
            }
        }
    }
}
