package simcam

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: Run
// promises that every goroutine it started (ours and gortsplib's) has exited
// when it returns, and the test clients are closed before each test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
