# METADATA
# title: Decision history access (stock OPA version)
# description: |
#   The twin of policies/tollgate/prior.rego for stock OPA, which has no
#   tollgate.history built-in and would not compile a call to it. Stock OPA
#   runs the pack without history views (perf.WriteWithoutHistoryViews;
#   perf.WriteOPABundle refuses a pack that declares any), where declared(view)
#   never holds, so the pack's decisions(view, key) is undefined for every
#   view: so is this one. The other rules are the pack's, unchanged.
package tollgate.prior

import data.tollgate.money

# declared(view) holds when the bundle's data declares the history view.
declared(view) if data.params.history.views[view]

# decisions(view, key) is undefined (a look-up in an empty object): stock OPA
# cannot read the service's decision history, and the pack it runs declares no
# view to read.
decisions(view, key) := {}[[view, key]] if declared(view)

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
