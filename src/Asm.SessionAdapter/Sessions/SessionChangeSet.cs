namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// A session's values as this request sees them: the values it loaded, and the change set it has not committed yet
/// (values set or removed, whether it cleared the session, client profiles to add). A commit sends the change set and
/// <see cref="StartNextDelta"/> folds it into the values, so that the next commit sends only what is new.
/// </summary>
internal sealed class SessionChangeSet
{
    private static readonly Dictionary<string, byte[]> NoValues = new(StringComparer.Ordinal);

    private readonly Dictionary<string, byte[]?> _changes = new(StringComparer.Ordinal);
    private readonly List<string> _newProfiles = [];
    private IReadOnlyDictionary<string, byte[]> _values = NoValues;

    /// <summary>Whether the request cleared the session (the loaded values no longer count).</summary>
    public bool Cleared { get; private set; }

    /// <summary>Whether there are values to write (a set, a remove or a clear).</summary>
    public bool HasValueChanges => _changes.Count > 0 || Cleared;

    /// <summary>Whether there is anything to write: values, or client profiles to add.</summary>
    public bool HasChanges => HasValueChanges || _newProfiles.Count > 0;

    /// <summary>The names the session holds once the change set is written.</summary>
    public IEnumerable<string> Keys
    {
        get
        {
            var keys = Cleared ? [] : _values.Keys.Where(k => !_changes.ContainsKey(k)).ToList();
            keys.AddRange(_changes.Where(c => c.Value is not null).Select(c => c.Key));
            return keys;
        }
    }

    /// <summary>Starts from <paramref name="values"/>, as loaded, with an empty change set.</summary>
    public void Reset(IReadOnlyDictionary<string, byte[]>? values = null)
    {
        _values = values ?? NoValues;
        Drop();
    }

    /// <summary>Replaces the loaded values (a load under the lock read them again), keeping the change set.</summary>
    public void Reload(IReadOnlyDictionary<string, byte[]> values) => _values = values;

    public bool TryGetValue(string name, out byte[]? value)
    {
        if (_changes.TryGetValue(name, out value))
        {
            return value is not null;
        }

        value = null;
        return !Cleared && _values.TryGetValue(name, out value);
    }

    /// <summary>Sets a copy of <paramref name="value"/>, unless the values would then exceed <paramref name="maxBytes"/>.</summary>
    /// <returns><see langword="false"/>, with nothing changed, when the values would exceed <paramref name="maxBytes"/>.</returns>
    public bool TrySet(string name, byte[] value, long maxBytes)
    {
        var had = _changes.TryGetValue(name, out var previous);
        _changes[name] = [.. value];
        if (ValueBytes() <= maxBytes)
        {
            return true;
        }

        if (had)
        {
            _changes[name] = previous;
        }
        else
        {
            _changes.Remove(name);
        }

        return false;
    }

    public void Remove(string name) => _changes[name] = null;

    public void Clear()
    {
        _changes.Clear();
        Cleared = true;
    }

    /// <summary>Forgets the values set, removed or cleared since the last commit (profiles to add stay).</summary>
    public void DiscardValueChanges()
    {
        _changes.Clear();
        Cleared = false;
    }

    /// <summary>Forgets the whole change set (a commit that failed: nothing may retry it).</summary>
    public void Drop()
    {
        DiscardValueChanges();
        _newProfiles.Clear();
    }

    public void AddProfile(string profile) => _newProfiles.Add(profile);

    /// <summary>The bytes of values the session would hold once the change set is written.</summary>
    public long ValueBytes()
    {
        long total = 0;
        if (!Cleared)
        {
            foreach (var (name, value) in _values)
            {
                total += _changes.ContainsKey(name) ? 0 : value.Length;
            }
        }

        foreach (var value in _changes.Values)
        {
            total += value?.Length ?? 0;
        }

        return total;
    }

    /// <summary>A copy of the values set (bytes) and removed (<see langword="null"/>) since the last commit.</summary>
    public Dictionary<string, byte[]?> CopyChanges() => new(_changes, StringComparer.Ordinal);

    /// <summary>A copy of the client profiles to add.</summary>
    public List<string> CopyNewProfiles() => [.. _newProfiles];

    /// <summary>Folds what was just committed into the loaded values and starts an empty change set.</summary>
    public void StartNextDelta()
    {
        if (HasValueChanges)
        {
            var values = Cleared ? new Dictionary<string, byte[]>(StringComparer.Ordinal) : new Dictionary<string, byte[]>(_values, StringComparer.Ordinal);
            foreach (var (name, value) in _changes)
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

        Drop();
    }
}
