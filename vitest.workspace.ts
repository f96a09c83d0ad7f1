// The one list of test projects; vitest.config.ts reads it as `test.projects`.
export default ["packages/*"]
