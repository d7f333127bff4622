package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestLockRoundTrip(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	forever := Lock{Camera: "a", Start: at(1).In(prague), End: at(time.Hour + 2), Reason: "case 2026/17", Created: at(3), Actor: "novakova"}
	expiring := Lock{Camera: "b", Start: at(0), End: at(time.Minute), Reason: "hold for review", Created: at(0), Expires: at(24*time.Hour + 5).In(prague), Actor: "cli:root"}
	for _, l := range []*Lock{&forever, &expiring} {
		id, err := c.AddLock(ctx, *l)
		if err != nil {
			t.Fatal(err)
		}
		l.ID = id
		l.Start, l.End, l.Created, l.Expires = l.Start.UTC(), l.End.UTC(), l.Created.UTC(), l.Expires.UTC()
	}

	for _, tc := range []struct {
		name string
		now  time.Time
		want []Lock
	}{
		{"both active", at(time.Hour), []Lock{forever, expiring}},
		{"last nanosecond before expiry", at(24*time.Hour + 4), []Lock{forever, expiring}},
		{"expired at its instant", at(24*time.Hour + 5), []Lock{forever}},
		{"long after", at(1000 * time.Hour), []Lock{forever}},
	} {
		got, err := c.Locks(ctx, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Locks =\n%+v\nwant\n%+v", tc.name, got, tc.want)
		}
	}

	if err := c.RemoveLock(ctx, forever.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.RemoveLock(ctx, forever.ID), ErrNotFound, "catalog: remove lock 1: not found")
	if got, err := c.Locks(ctx, at(time.Hour)); err != nil || !reflect.DeepEqual(got, []Lock{expiring}) {
		t.Errorf("after RemoveLock, Locks = %+v (err %v), want only %+v", got, err, expiring)
	}
}

func TestAddLockValidation(t *testing.T) {
	c, _ := openTest(t)
	good := Lock{Camera: "a", Start: at(0), End: at(time.Minute), Reason: "case", Created: at(0)}
	for _, tc := range []struct {
		name   string
		mutate func(*Lock)
		want   string
	}{
		{"no camera", func(l *Lock) { l.Camera = "" }, "catalog: add lock: camera is empty"},
		{"no start", func(l *Lock) { l.Start = time.Time{} }, "catalog: add lock: start is not set"},
		{"no end", func(l *Lock) { l.End = time.Time{} }, "catalog: add lock: end is not set"},
		{"end equals start", func(l *Lock) { l.End = l.Start }, "catalog: add lock: end 2026-03-14T09:26:53.589793238Z is not after start 2026-03-14T09:26:53.589793238Z"},
		{"end before start", func(l *Lock) { l.End = at(-time.Second) }, "catalog: add lock: end 2026-03-14T09:26:52.589793238Z is not after start"},
		{"no reason", func(l *Lock) { l.Reason = "" }, "catalog: add lock: reason is empty"},
		{"no created", func(l *Lock) { l.Created = time.Time{} }, "catalog: add lock: created is not set"},
		{"expires before created", func(l *Lock) { l.Expires = at(-time.Second) }, "catalog: add lock: expires 2026-03-14T09:26:52.589793238Z is not after created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := good
			tc.mutate(&l)
			_, err := c.AddLock(context.Background(), l)
			wantErr(t, err, nil, tc.want)
		})
	}
	if locks, err := c.Locks(context.Background(), at(0)); err != nil || len(locks) != 0 {
		t.Errorf("Locks after refused adds = %+v (err %v), want none", locks, err)
	}
}
