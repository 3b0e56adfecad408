package redleaseotel_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/redlease/redlease/internal/leaktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leaktest.Options()...) }
