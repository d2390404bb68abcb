package history

import (
	"math/big"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/server/masterdata"
)

// maxIntDigits bounds the integer part of a counted amount like master
// data's amounts (below 10^12), so one amount always fits int64 minor units.
const maxIntDigits = 12

// parseMinor reads an exact decimal amount ("-12.50", "4000.00") in
// currency's minor units: 1250 for "12.50" USD. It refuses what the policy
// pack refuses (exponents, JSON numbers, more decimals than the currency
// has, an unsupported currency), so a sum is never made of guesses. abs
// drops the sign (AI-10 sums |variance_amount|).
func parseMinor(text, currency string, abs bool) (int64, bool) {
	digits, ok := masterdata.CurrencyDigits(currency)
	if !ok {
		return 0, false
	}
	neg := false
	if rest, ok := strings.CutPrefix(text, "-"); ok {
		neg, text = true, rest
	}
	whole, frac, dot := strings.Cut(text, ".")
	if !allDigits(whole) || (dot && !allDigits(frac)) || len(frac) > digits {
		return 0, false
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > maxIntDigits {
		return 0, false
	}
	var n int64
	if units := whole + frac + strings.Repeat("0", digits-len(frac)); strings.Trim(units, "0") != "" {
		var err error
		if n, err = strconv.ParseInt(units, 10, 64); err != nil {
			return 0, false // unreachable: at most 15 digits
		}
	}
	if neg && !abs {
		n = -n
	}
	return n, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// sum adds minor units exactly: int64 while it fits, math/big after.
type sum struct {
	small int64
	big   *big.Int
}

func (s *sum) add(v int64) {
	if s.big == nil {
		r := s.small + v
		if (v > 0 && r < s.small) || (v < 0 && r > s.small) {
			s.big = big.NewInt(s.small)
		} else {
			s.small = r
			return
		}
	}
	s.big.Add(s.big, big.NewInt(v))
}

// format renders the sum as a decimal string with the currency's digits:
// "8000.00", "-0.50", "1200" (JPY).
func (s *sum) format(digits int) string {
	var t string
	if s.big != nil {
		t = s.big.String()
	} else {
		t = strconv.FormatInt(s.small, 10)
	}
	sign := ""
	if rest, ok := strings.CutPrefix(t, "-"); ok {
		sign, t = "-", rest
	}
	if digits == 0 {
		return sign + t
	}
	if len(t) <= digits {
		t = strings.Repeat("0", digits-len(t)+1) + t
	}
	return sign + t[:len(t)-digits] + "." + t[len(t)-digits:]
}
