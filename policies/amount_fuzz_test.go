package policies_test

import (
	"encoding/json"
	"io/fs"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tollgate/tollgate/bundles/demo"
	"github.com/tollgate/tollgate/policies"
	tollgatev1 "github.com/tollgate/tollgate/proto/tollgate/v1"
	"github.com/tollgate/tollgate/server/api"
)

// amountCodes are the VAL codes that reject an amount (policy-pack §4).
var amountCodes = []string{"INVALID_AMOUNT_FORMAT", "INVALID_AMOUNT_NEGATIVE", "INVALID_AMOUNT_PRECISION", "AMOUNT_OUT_OF_RANGE"}

// FuzzPOSubmitAmount sends a PO.SUBMIT from u_buyer1 (a buyer at DC1 with a 5,000.00 limit in the demo
// data) for supplier S1 through the real decision service, engine, embedded pack and demo master data,
// with a fuzzed amount string and currency. The decision never fails open or undefined
// (POLICY_ERROR/POLICY_UNDEFINED). In a currency of the pack with d minor digits, an amount that is not
// `^\d+(\.\d{1,d})?$` is a DENY whose primary reason is an amount code; a well-formed amount never draws
// an amount code unless it is above params.amount_max (then AMOUNT_OUT_OF_RANGE), and in USD it gets
// exactly the TH-1 tier of its exact value. An unsupported currency is a DENY with UNSUPPORTED_CURRENCY.
// Only strings the API rejects (invalid UTF-8, over the string limit) give an error.
func FuzzPOSubmitAmount(f *testing.F) {
	compiled := compilePack(f)
	store := newStore(f, demo.FS, nil)
	srv := newServer(f, compiled, store, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ctx := emptyHistory(f)
	digits, amountMax := packMoney(f)

	for _, a := range []string{
		"8000.00", "5000.00", "5000.01", "5000", "4999.999", "0", "0.00", "0.1", "25000.00", "25000.01",
		"100000", "500000.00", "500000.01", "1000000000.00", "1000000000.01", "999999999999999999999999999999",
		"000000000000000000000000000001.00", "-1", "-0", "--5", "-", "", ".5", "5.", "5..0", "1e3", "NaN",
		"Infinity", "12abc", "+5", " 5", "5 ", "１２", "0x10", "1_000", "1,000.00", "5.-1", "-5.001",
	} {
		f.Add(a, "USD")
	}
	for _, c := range []string{"EUR", "JPY", "KWD", "usd", "", "XXX", "USD "} {
		f.Add("12.345", c)
		f.Add("100", c)
	}

	f.Fuzz(func(t *testing.T, amount, currency string) {
		req := &tollgatev1.DecideRequest{
			Actor:  &tollgatev1.Actor{Id: "u_buyer1", Type: tollgatev1.ActorType_ACTOR_TYPE_HUMAN},
			Action: "PO.SUBMIT",
			Resource: &tollgatev1.Resource{Type: "purchase_order", Id: "PO-FUZZ", Attributes: &structpb.Struct{
				Fields: map[string]*structpb.Value{
					"amount": structpb.NewStringValue(amount), "currency": structpb.NewStringValue(currency),
					"category": structpb.NewStringValue("MRO"), "site_id": structpb.NewStringValue("DC1"),
					"supplier_id": structpb.NewStringValue("S1"),
				},
			}},
		}
		resp, err := srv.Decide(ctx, req)
		if err != nil {
			if utf8.ValidString(amount) && utf8.ValidString(currency) &&
				len(amount) <= api.DefaultMaxStringBytes && len(currency) <= api.DefaultMaxStringBytes {
				t.Fatalf("Decide(amount %q, currency %q): %v", amount, currency, err)
			}
			return
		}
		effect := strings.TrimPrefix(resp.GetEffect().String(), "EFFECT_")
		var codes []string
		for _, r := range resp.GetReasons() {
			codes = append(codes, r.GetCode())
		}
		if len(codes) == 0 {
			t.Fatalf("amount %q %q: %s without reasons", amount, currency, effect)
		}
		for _, c := range codes {
			if c == "POLICY_ERROR" || c == "POLICY_UNDEFINED" {
				t.Fatalf("amount %q %q: %s %v", amount, currency, effect, codes)
			}
		}
		hasAmountCode := slices.ContainsFunc(codes, func(c string) bool { return slices.Contains(amountCodes, c) })

		d, supported := digits[currency]
		if !supported {
			if effect != "DENY" || !slices.Contains(codes, "UNSUPPORTED_CURRENCY") {
				t.Fatalf("amount %q in unsupported currency %q: %s %v, want DENY with UNSUPPORTED_CURRENCY", amount, currency, effect, codes)
			}
			return
		}
		if !wellFormed(amount, d) {
			if effect != "DENY" || !slices.Contains(amountCodes, codes[0]) {
				t.Fatalf("malformed amount %q %s: %s %v, want DENY with an amount code first", amount, currency, effect, codes)
			}
			return
		}
		value, _ := new(big.Rat).SetString(amount)
		if value.Cmp(amountMax) > 0 {
			if effect != "DENY" || codes[0] != "AMOUNT_OUT_OF_RANGE" {
				t.Fatalf("amount %q %s above the maximum: %s %v, want DENY AMOUNT_OUT_OF_RANGE", amount, currency, effect, codes)
			}
			return
		}
		if hasAmountCode {
			t.Fatalf("well-formed amount %q %s: %s %v, want no amount code", amount, currency, effect, codes)
		}
		if currency != "USD" {
			return
		}
		want, wantEffect := poTier(value)
		if effect != wantEffect || codes[0] != want {
			t.Fatalf("amount %q USD: %s %v, want %s %s", amount, effect, codes, wantEffect, want)
		}
	})
}

// wellFormed reports whether amount is `^\d+(\.\d{1,d})?$`.
func wellFormed(amount string, d int) bool {
	frac := ""
	if d > 0 {
		frac = `(\.\d{1,` + strconv.Itoa(d) + `})?`
	}
	return regexp.MustCompile(`^\d+` + frac + `$`).MatchString(amount)
}

// poTier is TH-1 for a buyer at a DC site (policy-pack §4): the primary reason and effect for value.
func poTier(value *big.Rat) (string, string) {
	for _, tier := range []struct {
		limit  int64
		code   string
		effect string
	}{
		{5000, "PO_WITHIN_BUYER_LIMIT", "ALLOW"},
		{25000, "PO_TIER_2_APPROVAL", "REQUIRE_APPROVAL"},
		{100000, "PO_TIER_3_APPROVAL", "REQUIRE_APPROVAL"},
		{500000, "PO_TIER_4_APPROVAL", "REQUIRE_APPROVAL"},
	} {
		if value.Cmp(new(big.Rat).SetInt64(tier.limit)) <= 0 {
			return tier.code, tier.effect
		}
	}
	return "PO_TIER_5_APPROVAL", "REQUIRE_APPROVAL"
}

// packMoney reads the pack's currencies (code → minor digits) and amount_max from its data.json.
func packMoney(tb testing.TB) (map[string]int, *big.Rat) {
	tb.Helper()
	raw, err := fs.ReadFile(policies.FS, "data.json")
	if err != nil {
		tb.Fatalf("read pack data: %v", err)
	}
	var data struct {
		Params struct {
			Currencies map[string]int `json:"currencies"`
			AmountMax  string         `json:"amount_max"`
		} `json:"params"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		tb.Fatalf("decode pack data: %v", err)
	}
	limit, ok := new(big.Rat).SetString(data.Params.AmountMax)
	if !ok || len(data.Params.Currencies) == 0 {
		tb.Fatalf("pack data: currencies %v, amount_max %q", data.Params.Currencies, data.Params.AmountMax)
	}
	return data.Params.Currencies, limit
}
