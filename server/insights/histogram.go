package insights

import (
	"math"
	"sort"
	"time"
)

// Approval delays are kept as counts per log bucket: bin b holds delays in
// [binBase^b, binBase^(b+1)) seconds, bin 0 everything under binBase
// seconds. Buckets about 10 % wide bound a quantile's error to about 5 %
// of its value, with a few hundred bins from a second to years.
const binBase = 1.1

// DelayBin returns the histogram bin of a delay.
func DelayBin(d time.Duration) int {
	s := d.Seconds()
	if s < binBase {
		return 0
	}
	return int(math.Floor(math.Log(s) / math.Log(binBase)))
}

// binValue is the representative delay of a bin: its geometric middle.
func binValue(bin int) time.Duration {
	if bin == 0 {
		return time.Second / 2
	}
	return time.Duration(math.Pow(binBase, float64(bin)+0.5) * float64(time.Second))
}

// quantile returns the q-quantile (0 < q <= 1) of a histogram (bin →
// count); 0 for an empty one.
func quantile(hist map[int]int64, q float64) time.Duration {
	var total int64
	bins := make([]int, 0, len(hist))
	for b, n := range hist {
		bins = append(bins, b)
		total += n
	}
	if total == 0 {
		return 0
	}
	sort.Ints(bins)
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for _, b := range bins {
		seen += hist[b]
		if seen >= rank {
			return binValue(b)
		}
	}
	return binValue(bins[len(bins)-1])
}
