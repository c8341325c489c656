using System.Text;

namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// A session's values as this request sees them: the values it loaded, and the change set it has not committed yet
/// (values set or removed, whether it cleared the session, client profiles to add). A commit sends the change set and
/// <see cref="StartNextDelta"/> folds it into the values, so that the next commit sends only what is new.
/// </summary>
/// <remarks>
/// The collections of the change set are made on first use, and a commit is given them (<see cref="Changes"/>,
/// <see cref="NewProfiles"/>) rather than copies: once given, they are never changed again, a later change starts
/// from a copy. A storage call that outlives its timeout never sees them move.
/// </remarks>
internal sealed class SessionChangeSet
{
    private static readonly Dictionary<string, byte[]> NoValues = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, byte[]?> NoChanges = new(StringComparer.Ordinal);

    private Dictionary<string, byte[]?>? _changes;
    private List<string>? _newProfiles;
    private bool _given;
    private Dictionary<string, byte[]> _values = NoValues;

    /// <summary>What <see cref="StoredBytes"/> answers, kept up to date by every change once counted; -1 before.</summary>
    private long _bytes = -1;

    /// <summary>Whether the request cleared the session (the loaded values no longer count).</summary>
    public bool Cleared { get; private set; }

    /// <summary>Whether there are values to write (a set, a remove or a clear).</summary>
    public bool HasValueChanges => _changes is { Count: > 0 } || Cleared;

    /// <summary>Whether there is anything to write: values, or client profiles to add.</summary>
    public bool HasChanges => HasValueChanges || _newProfiles is { Count: > 0 };

    /// <summary>The values set (bytes) and removed (<see langword="null"/>) since the last commit, for a commit: never changed from here on.</summary>
    public IReadOnlyDictionary<string, byte[]?> Changes
    {
        get
        {
            _given = true;
            return _changes ?? NoChanges;
        }
    }

    /// <summary>The client profiles to add, for a commit: never changed from here on.</summary>
    public IReadOnlyList<string> NewProfiles
    {
        get
        {
            _given = true;
            return _newProfiles ?? [];
        }
    }

    /// <summary>The names the session holds once the change set is written.</summary>
    public IEnumerable<string> Keys
    {
        get
        {
            var changes = _changes ?? NoChanges;
            var keys = Cleared ? [] : _values.Keys.Where(k => !changes.ContainsKey(k)).ToList();
            keys.AddRange(changes.Where(c => c.Value is not null).Select(c => c.Key));
            return keys;
        }
    }

    /// <summary>Starts from <paramref name="values"/>, as loaded, with an empty change set.</summary>
    public void Reset(IReadOnlyDictionary<string, byte[]>? values = null)
    {
        _values = values is null ? NoValues : AsDictionary(values);
        Drop();
    }

    /// <summary>Replaces the loaded values (a load under the lock read them again), keeping the change set.</summary>
    public void Reload(IReadOnlyDictionary<string, byte[]> values)
    {
        _values = AsDictionary(values);
        _bytes = -1;
    }

    public bool TryGetValue(string name, out byte[]? value)
    {
        if (_changes is not null && _changes.TryGetValue(name, out value))
        {
            return value is not null;
        }

        value = null;
        return !Cleared && _values.TryGetValue(name, out value);
    }

    /// <summary>Sets a copy of <paramref name="value"/>, unless the values would then exceed <paramref name="maxBytes"/> (see <see cref="StoredBytes"/>).</summary>
    /// <returns><see langword="false"/>, with nothing changed, when the values would exceed <paramref name="maxBytes"/>.</returns>
    public bool TrySet(string name, byte[] value, long maxBytes)
    {
        // Counted from the change alone: a session of many values is not counted again on every Set.
        var bytes = StoredBytes() - BytesOf(name) + Encoding.UTF8.GetByteCount(name) + value.Length;
        if (bytes > maxBytes)
        {
            return false;
        }

        WritableChanges()[name] = [.. value];
        _bytes = bytes;
        return true;
    }

    public void Remove(string name)
    {
        if (_bytes >= 0)
        {
            _bytes -= BytesOf(name);
        }

        WritableChanges()[name] = null;
    }

    public void Clear()
    {
        _changes = null;
        Cleared = true;
        _bytes = 0;
    }

    /// <summary>Forgets the values set, removed or cleared since the last commit (profiles to add stay).</summary>
    public void DiscardValueChanges()
    {
        _changes = null;
        Cleared = false;
        _bytes = -1;
    }

    /// <summary>Forgets the whole change set (a commit that failed: nothing may retry it).</summary>
    public void Drop()
    {
        DiscardValueChanges();
        _newProfiles = null;
        _given = false;
    }

    public void AddProfile(string profile)
    {
        if (_given)
        {
            GiveUpGiven();
        }

        (_newProfiles ??= []).Add(profile);
    }

    /// <summary>
    /// The bytes the session's values would take once the change set is written: each value's bytes and its name's
    /// (UTF-8), so that empty values under ever new names cannot grow a session without bound.
    /// </summary>
    public long StoredBytes() => _bytes >= 0 ? _bytes : _bytes = CountBytes();

    /// <summary>The bytes <paramref name="name"/>'s value takes in <see cref="StoredBytes"/>: 0 when it has none.</summary>
    private long BytesOf(string name) => TryGetValue(name, out var value) ? Encoding.UTF8.GetByteCount(name) + value!.Length : 0;

    private long CountBytes()
    {
        long total = 0;
        var changes = _changes ?? NoChanges;
        if (!Cleared)
        {
            foreach (var (name, value) in _values)
            {
                total += changes.ContainsKey(name) ? 0 : Encoding.UTF8.GetByteCount(name) + value.Length;
            }
        }

        foreach (var (name, value) in changes)
        {
            total += value is null ? 0 : Encoding.UTF8.GetByteCount(name) + value.Length;
        }

        return total;
    }

    /// <summary>Folds what was just committed into the loaded values and starts an empty change set.</summary>
    public void StartNextDelta()
    {
        if (HasValueChanges)
        {
            var values = Cleared ? new Dictionary<string, byte[]>(StringComparer.Ordinal) : new Dictionary<string, byte[]>(_values, StringComparer.Ordinal);
            foreach (var (name, value) in _changes ?? NoChanges)
            {
                if (value is null)
                {
                    values.Remove(name);
                }
                else
                {
                    values[name] = value;
                }
            }

            _values = values;
        }

        // The values now hold what the change set did: their bytes are the same.
        var bytes = _bytes;
        Drop();
        _bytes = bytes;
    }

    /// <summary>
    /// The loaded values as a <see cref="Dictionary{TKey, TValue}"/>, which every driver returns (taken as it is, so
    /// that it is enumerated without boxing an enumerator); any other dictionary is copied.
    /// </summary>
    private static Dictionary<string, byte[]> AsDictionary(IReadOnlyDictionary<string, byte[]> values) =>
        values as Dictionary<string, byte[]> ?? new Dictionary<string, byte[]>(values, StringComparer.Ordinal);

    /// <summary>The change set's values, made now or copied when a commit was given them.</summary>
    private Dictionary<string, byte[]?> WritableChanges()
    {
        if (_given)
        {
            GiveUpGiven();
        }

        return _changes ??= new Dictionary<string, byte[]?>(StringComparer.Ordinal);
    }

    /// <summary>Leaves the collections a commit was given to it: the change set goes on with copies.</summary>
    private void GiveUpGiven()
    {
        _given = false;
        _changes = _changes is null ? null : new Dictionary<string, byte[]?>(_changes, StringComparer.Ordinal);
        _newProfiles = _newProfiles is null ? null : [.. _newProfiles];
    }
}
