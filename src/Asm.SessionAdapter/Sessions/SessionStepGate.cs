namespace Asm.SessionAdapter.Sessions;

/// <summary>
/// Runs a request's steps that may take its session's lock (the load, the escalation of a write) one at a time. A
/// request that starts one while another of its own tasks runs it (two services awaiting <c>LoadAsync()</c> at
/// once, <c>Task.WhenAll</c> over code that each escalates) waits for that run and then looks again whether the step
/// is still needed, instead of asking for the lock a second time and queueing behind its own lease until
/// <see cref="AsmSessionOptions.LockWaitTimeout"/>.
/// </summary>
/// <remarks>
/// Every request runs its load through here, almost always alone: a run allocates nothing unless another caller has to
/// wait for it.
/// </remarks>
internal sealed class SessionStepGate
{
    private bool _running;
    private TaskCompletionSource? _finished;

    /// <summary>
    /// Runs <paramref name="step"/> while <paramref name="needed"/> says it is needed and no other caller runs a step;
    /// a caller that finds one running waits for it (cancelled by its own <paramref name="cancellationToken"/> only),
    /// then asks <paramref name="needed"/> again: a step that failed or was cancelled for its caller is run anew.
    /// </summary>
    /// <remarks>
    /// <paramref name="needed"/> may throw to refuse the step. A step must not start a step of the same gate itself
    /// (it would wait for itself); the session's event handlers run once the session is loaded, where no step is needed.
    /// </remarks>
    public async Task RunAsync<TState>(
        TState state, Func<TState, bool> needed, Func<TState, CancellationToken, Task> step, CancellationToken cancellationToken)
    {
        while (needed(state))
        {
            // The gate belongs to one session, which keeps it private: nothing else locks it.
            Task? running = null;
            lock (this)
            {
                if (_running)
                {
                    running = (_finished ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                }

                _running = true;
            }

            if (running is not null)
            {
                await running.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            try
            {
                await step(state, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                TaskCompletionSource? finished;
                lock (this)
                {
                    (_running, finished, _finished) = (false, _finished, null);
                }

                finished?.SetResult();
            }

            return;
        }
    }
}
