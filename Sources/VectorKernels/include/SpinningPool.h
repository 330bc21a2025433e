#ifndef PEFT_SPINNING_POOL_H
#define PEFT_SPINNING_POOL_H

/// Persistent helper threads for short parallel calls (a decoding step makes a few hundred calls of tens of
/// microseconds each, where waking a sleeping thread per call costs as much as the work). After a call the helpers
/// spin for `spin_microseconds` waiting for the next one, then sleep on a condition variable.
typedef struct peft_spinning_pool peft_spinning_pool;

/// A pool with `helpers` threads (at least 1), or NULL if a thread could not be started.
peft_spinning_pool *peft_spinning_pool_create(int helpers, long spin_microseconds);

/// Runs body(context, i) for i in [0, chunks) on the caller and the helpers (chunks handed out one at a time) and
/// returns when all are done: 1. Returns 0 without running anything when another caller is using the pool, so the
/// caller can run the work some other way. Never call it from inside a body.
int peft_spinning_pool_run(peft_spinning_pool *pool, long chunks, void (*body)(void *context, long index), void *context);

#endif
