namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// Which session's load raises an event on this async flow. The handler of such an event runs inside the load's
/// step (see <see cref="SessionStepGate"/>), so an escalation it makes must not wait for that step: it would wait for
/// itself. Other tasks of the request, on flows of their own, still go through the gate.
/// </summary>
internal static class LoadEventFlow
{
    private static readonly AsyncLocal<object?> Raising = new();

    /// <summary>Whether the caller runs inside a handler of an event that <paramref name="session"/>'s load raised.</summary>
    public static bool IsInsideFor(object session) => ReferenceEquals(Raising.Value, session);

    /// <summary>
    /// Raises an event of <paramref name="session"/>'s load: <paramref name="raise"/> and what it awaits see the mark,
    /// the caller does not (an async method's changes to its flow end with it).
    /// </summary>
    public static async Task RaiseAsync<TContext>(object session, Func<TContext, Task> raise, TContext context)
    {
        Raising.Value = session;
        await raise(context).ConfigureAwait(false);
    }
}
