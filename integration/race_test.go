//go:build integration && race

package integration

// raceEnabled says that the tests run with -race, so the service under test
// is built with it too.
const raceEnabled = true
