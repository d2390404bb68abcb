# METADATA
# title: Exact money
# description: |
#   Decimal amount strings to integer minor units. Amounts are never compared
#   as floats: a string is validated (format, sign, precision for its
#   currency, range by digit count before conversion) and only then turned
#   into an integer count of minor units.
package tollgate.money

import data.params

# digits(cur) is the number of minor-unit digits of a supported currency;
# undefined for an unsupported one.
digits(cur) := params.currencies[cur] if is_string(cur)

# supported(cur) holds when cur is a currency the pack has numbers for.
supported(cur) if digits(cur)

# problem(a, cur) is the VAL reason code that rejects amount a in currency cur,
# undefined when a is a well-formed amount. An unsupported currency is
# reported by the caller; precision is then not checked.
problem(a, cur) := "INVALID_AMOUNT_FORMAT" if {
	not is_string(a)
} else := "INVALID_AMOUNT_FORMAT" if {
	not regex.match(`^-?\d+(\.\d+)?$`, a)
} else := "INVALID_AMOUNT_NEGATIVE" if {
	startswith(a, "-")
} else := "INVALID_AMOUNT_PRECISION" if {
	count(_frac(a)) > digits(cur)
} else := "AMOUNT_OUT_OF_RANGE" if {
	# Digit count first, so a 30-digit string never reaches to_number.
	count(_int(a)) > count(_int(params.amount_max))
} else := "AMOUNT_OUT_OF_RANGE" if {
	minor(a, cur) > minor(params.amount_max, cur)
}

# valid(a, cur) holds when a is a well-formed amount in a supported currency.
valid(a, cur) if {
	supported(cur)
	not problem(a, cur)
}

# minor(a, cur) is amount a (a validated decimal string) in integer minor
# units of cur: "12.5" USD is 1250.
minor(a, cur) := m if {
	d := digits(cur)
	f := _frac(a)
	count(f) <= d
	padded := substring(concat("", [f, "000000000000"]), 0, d)
	m := (to_number(_int_digits(a)) * _pow10(d)) + _num(padded)
}

# limit(a, cur) is a pack threshold (a decimal string in params.pack_currency)
# in minor units of cur, undefined when cur is not the pack currency: the pack
# has no exchange rates, so callers treat an undefined limit as exceeded.
limit(a, cur) := minor(a, cur) if cur == params.pack_currency

_int(a) := trim_left(split(a, ".")[0], "0")

_int_digits(a) := i if {
	i := _int(a)
	i != ""
} else := "0"

_frac(a) := split(a, ".")[1]

_frac(a) := "" if not contains(a, ".")

_num("") := 0

_num(s) := to_number(s) if s != ""

_pow10(d) := to_number(concat("", ["1", substring("000000000000", 0, d)]))
