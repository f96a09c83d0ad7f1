/**
 * Reading a Schema decode failure the way the option decoders report it: the
 * first issue met, the path to it, and the message its schema gives.
 *
 * @internal
 */
import * as SchemaIssue from "effect/SchemaIssue"

/** @internal */
export interface FirstIssue {
  readonly leaf: SchemaIssue.Issue
  readonly path: ReadonlyArray<PropertyKey>
}

/**
 * The first issue under `issue`, with its path. Decoders stop at the first
 * issue, so it is the one to report. A struct's or union's own node is passed
 * through (its annotations describe the whole schema, not this failure),
 * except a union that no member matched at all. A failed check (`Filter`)
 * is a leaf: its filter says what was expected.
 *
 * @internal
 */
export const first = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey> = []): FirstIssue => {
  switch (issue._tag) {
    case "Pointer":
      return first(issue.issue, [...path, ...issue.path])
    case "Encoding":
      return first(issue.issue, path)
    case "Composite":
    case "AnyOf":
      return issue.issues.length > 0 ? first(issue.issues[0]!, path) : { leaf: issue, path }
    default:
      return { leaf: issue, path }
  }
}

/**
 * The message a schema gave for this leaf, if any: `message` on a value or
 * type issue (an option's `expected`), `messageMissingKey` on a missing key.
 *
 * @internal
 */
export const customMessage = (leaf: SchemaIssue.Issue): string | undefined => {
  const annotations: { readonly [key: string]: unknown } | undefined = leaf._tag === "InvalidValue"
    ? leaf.annotations
    : leaf._tag === "Filter"
    ? leaf.filter.annotations
    : leaf._tag === "MissingKey"
    ? leaf.annotations
    : "ast" in leaf
    ? leaf.ast.annotations
    : undefined
  const message = annotations?.[leaf._tag === "MissingKey" ? "messageMissingKey" : "message"]
  return typeof message === "string" ? message : undefined
}

const formatter = SchemaIssue.makeFormatterDefault()

/**
 * The schema's message for this leaf, or Effect's default text for it (a
 * missing key "is missing").
 *
 * @internal
 */
export const message = (leaf: SchemaIssue.Issue): string =>
  customMessage(leaf) ?? (leaf._tag === "MissingKey" ? "is missing" : formatter(leaf))

/**
 * The issue of a value that is not what `expected` says.
 *
 * @internal
 */
export const invalid = (input: unknown, expected: string): SchemaIssue.Issue =>
  new SchemaIssue.InvalidValue({ message: expected }, input)

/**
 * A tagged union that no member matched, seen from the value: when the value
 * is an object, the failure is its `_tag` (missing, or none of the members'),
 * so the path goes on to `_tag`. Anything else is left as it is.
 *
 * @internal
 */
export const atTag = (
  found: FirstIssue,
  value: unknown
): { readonly path: ReadonlyArray<PropertyKey>; readonly missing: boolean } | undefined => {
  if (found.leaf._tag !== "AnyOf" || found.leaf.issues.length > 0) return undefined
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  return { path: [...found.path, "_tag"], missing: !("_tag" in value) }
}
