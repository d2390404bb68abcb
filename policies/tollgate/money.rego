# METADATA
# title: Exact money
# description: |
#   Decimal amount strings to integer minor units. Amounts are never compared
#   as floats: a string is validated (format, sign, precision for its
#   currency, range by digit count before conversion) and only then turned
#   into an integer count of minor units.
package tollgate.money

# params is data.params read once per decision: indexing a value is cheaper
# than a store read per reference.
params := data.params


# digits(cur) is the number of minor-unit digits of a supported currency;
# undefined for an unsupported one.
digits(cur) := params.currencies[cur] if is_string(cur)

# supported(cur) holds when cur is a currency the pack has numbers for.
supported(cur) if digits(cur)

# problem(a, cur) is the VAL reason code that rejects amount a in currency cur,
# undefined when a is a well-formed amount. An unsupported currency is
# reported by the caller; precision is then not checked.
problem(a, cur) := _problem(a, cur) if not _ok(a, cur)

# _ok(a, cur) is the common case in one body: a valid amount in a supported
# currency. It implies _problem(a, cur) is undefined.
_ok(a, cur) if {
	is_string(a)
	d := params.currencies[cur]
	parts := split(a, ".")
	count(parts) <= 2
	i := parts[0]
	i != ""
	trim_left(i, "0123456789") == ""
	f := concat("", array.slice(parts, 1, 2))

	# "1." splits into 2 parts with an empty fraction; "1" into 1 part.
	count(parts) + count(f) != 2
	trim_left(f, "0123456789") == ""
	count(f) <= d
	count(trim_left(i, "0")) <= _max_int_digits
	minor(a, cur) <= minor(params.amount_max, cur)
}

_max_int_digits := count(trim_left(split(params.amount_max, ".")[0], "0"))

_problem(a, cur) := "INVALID_AMOUNT_FORMAT" if {
	not is_string(a)
} else := "INVALID_AMOUNT_FORMAT" if {
	not _decimal(split(trim_prefix(a, "-"), "."))
} else := "INVALID_AMOUNT_NEGATIVE" if {
	startswith(a, "-")
} else := "INVALID_AMOUNT_PRECISION" if {
	count(_frac(a)) > digits(cur)
} else := "AMOUNT_OUT_OF_RANGE" if {
	# Digit count first, so a 30-digit string never reaches to_number.
	count(trim_left(split(a, ".")[0], "0")) > _max_int_digits
} else := "AMOUNT_OUT_OF_RANGE" if {
	minor(a, cur) > minor(params.amount_max, cur)
}

# _decimal(parts) holds for the "."-split parts of `\d+(\.\d+)?`.
_decimal([i]) if _digits(i)

_decimal([i, f]) if {
	_digits(i)
	_digits(f)
}

_digits(s) if {
	s != ""
	trim_left(s, "0123456789") == ""
}

# valid(a, cur) holds when a is a well-formed amount in a supported currency.
valid(a, cur) if {
	supported(cur)
	not problem(a, cur)
}

# minor(a, cur) is amount a (a validated decimal string) in integer minor
# units of cur: "12.5" USD is 1250; undefined when a has more fraction digits
# than cur.
minor(a, cur) := to_number(concat("", [parts[0], f])) * _pow10[d - count(f)] if {
	# One function, no helpers: every function call costs a cache entry.
	d := params.currencies[cur]
	parts := split(a, ".")
	f := concat("", array.slice(parts, 1, 2))
	count(f) <= d
}

# _pow10[n] is 10^n for every minor-unit digit count a currency may have.
_pow10 := [1, 10, 100, 1000, 10000, 100000, 1000000]

# limit(a, cur) is a pack threshold (a decimal string in params.pack_currency)
# in minor units of cur, undefined when cur is not the pack currency: the pack
# has no exchange rates, so callers treat an undefined limit as exceeded.
limit(a, cur) := minor(a, cur) if cur == params.pack_currency

_frac(a) := split(a, ".")[1]

_frac(a) := "" if not contains(a, ".")

# format(n, cur) is n minor units of cur (n >= 0, an integer) as a decimal
# string with cur's digits: 123456 USD is "1234.56", 5 USD is "0.05".
format(n, cur) := format_int(n, 10) if params.currencies[cur] == 0

format(n, cur) := concat(".", [substring(s, 0, count(s) - d), substring(s, count(s) - d, d)]) if {
	d := params.currencies[cur]
	d > 0
	i := format_int(n, 10)

	# Left-pad to at least d+1 digits so there is an integer part.
	s := concat("", [substring("0000000", 0, max({0, (d + 1) - count(i)})), i])
}
