/**
 * The process's stdout and stderr, guarded: a reader that went away (the
 * other end of a pipe closed, `| head`) makes Node emit `error` (EPIPE) on
 * the stream, and an `error` nobody listens to is an uncaught exception that
 * kills the process before any finalizer runs (no `stopped` line, the pid
 * file and FIFOs left behind). Here each stream gets a listener once; after
 * its first error the stream is marked lost and writes to it are skipped, so
 * losing an output never loses the rest of the program.
 *
 * @internal
 */

/** @internal */
export interface Guarded {
  /** Writes unless the stream is lost; never throws. */
  readonly write: (text: string) => void
  /** Whether the stream failed (its reader went away, or another error). */
  readonly lost: () => boolean
  /** The error that lost it, if any. */
  readonly error: () => string | undefined
}

const guard = (stream: NodeJS.WriteStream): Guarded => {
  let failure: string | undefined = undefined
  const fail = (error: unknown) => {
    failure ??= (error as NodeJS.ErrnoException | undefined)?.code ?? String(error)
  }
  stream.on("error", fail)
  return {
    write: (text) => {
      if (failure !== undefined || stream.destroyed) return
      try {
        stream.write(text)
      } catch (error) {
        // A synchronous pipe write may also throw; the stream is lost all the same.
        fail(error)
      }
    },
    lost: () => failure !== undefined || stream.destroyed,
    error: () => failure
  }
}

let guarded: { readonly stdout: Guarded; readonly stderr: Guarded } | undefined = undefined

/**
 * The guarded stdout and stderr of this process; the listeners are added on
 * the first call and stay for the life of the process.
 *
 * @internal
 */
export const processStreams = (): { readonly stdout: Guarded; readonly stderr: Guarded } => {
  guarded ??= { stdout: guard(process.stdout), stderr: guard(process.stderr) }
  return guarded
}
