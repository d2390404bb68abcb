# METADATA
# title: Decision history access
# description: |
#   The one place that reads the service's own decision history (policy-pack
#   §6), through the engine's non-deterministic built-in tollgate.history, so
#   the engine records each answer among the decision's facts. A rule reads a
#   view only when the bundle declares it under params.history.views: a bundle
#   whose data drops a view switches that rule off without any lookup, where
#   calling an undeclared view would be an evaluation error (a DENY).
package tollgate.prior

import data.tollgate.money

# declared(view) holds when the bundle's data declares the history view.
declared(view) if data.params.history.views[view]

# decisions(view, key) is the built-in's answer for key (the view's key field
# values in declaration order): {count, sums: {currency: decimal string},
# decision_ids, unvalued}. Undefined when the view is not declared.
decisions(view, key) := tollgate.history(view, key) if declared(view)

# sum(h, cur) is h's sum in currency cur in minor units, 0 when h holds no
# decision in cur. Sums in other currencies are never combined with it.
# Undefined when the sum cannot be read in cur, so callers fail closed.
sum(h, cur) := money.minor(h.sums[cur], cur)

sum(h, cur) := 0 if not h.sums[cur]

# judgeable(h, cur) holds when every decision h counted has a readable value
# and h's sum in cur can be read: a value that could not be read must not
# pass as zero.
judgeable(h, cur) if {
	count(h.unvalued) == 0
	sum(h, cur)
}
