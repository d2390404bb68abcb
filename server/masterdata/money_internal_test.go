package masterdata

import (
	"regexp"
	"testing"
)

// TestIsAmountText: isAmountText accepts what the regexp it replaced, ^\d+(\.\d+)?$, matches, and
// nothing else.
func TestIsAmountText(t *testing.T) {
	re := regexp.MustCompile(`^\d+(\.\d+)?$`)
	for _, s := range []string{
		"0", "12", "12.50", "0.001", "007.0", "123456789012345678901234567890.5", "", ".", "1.", ".5", "-1",
		"+1", "1.2.3", "1e5", " 1", "1 ", "1,5", "١٢", "1.5x", "x",
	} {
		if got, want := isAmountText(s), re.MatchString(s); got != want {
			t.Errorf("isAmountText(%q) = %v, want %v", s, got, want)
		}
	}
}
