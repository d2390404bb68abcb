package insights_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/server/insights"
)

func TestQueryNormalize(t *testing.T) {
	now := time.Date(2026, 5, 10, 14, 25, 0, 0, time.UTC)
	q, err := insights.Query{}.Normalize(now)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 5, 10, 15, 0, 0, 0, time.UTC); !q.To.Equal(want) || !q.From.Equal(want.Add(-insights.DefaultRange)) || q.Granularity != insights.Day {
		t.Errorf("defaults: %+v, want the 30 days up to %s rounded out to the hour, by day", q, want)
	}
	q, err = insights.Query{From: now.Add(-90 * time.Minute), To: now, Granularity: insights.Hour}.Normalize(now)
	if err != nil || !q.From.Equal(time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("from rounds down to the hour: %+v, %v", q, err)
	}
	for name, bad := range map[string]insights.Query{
		"from after to":   {From: now, To: now.Add(-2 * time.Hour)},
		"over 400 days":   {From: now.Add(-401 * 24 * time.Hour), To: now},
		"granularity 60s": {Granularity: 60},
		"unknown group":   {Group: 99},
	} {
		if _, err := bad.Normalize(now); !errors.Is(err, insights.ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery", name, err)
		}
	}
}

func TestDelayBinsAreTenPercentWide(t *testing.T) {
	for _, d := range []time.Duration{2 * time.Second, time.Minute, time.Hour, 72 * time.Hour} {
		b := insights.DelayBin(d)
		if insights.DelayBin(d*105/100) > b+1 || insights.DelayBin(d*125/100) < b+2 {
			t.Errorf("bins around %s: %d, %d (+5%%), %d (+25%%); want about 10%% wide", d, b, insights.DelayBin(d*105/100), insights.DelayBin(d*125/100))
		}
	}
	if insights.DelayBin(0) != 0 || insights.DelayBin(time.Second) != 0 {
		t.Error("delays under 1.1s go to bin 0")
	}
}
