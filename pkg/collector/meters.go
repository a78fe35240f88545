package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// MeterSource lists a park's meters; registry.Service is one.
type MeterSource interface {
	ListMeters(ctx context.Context, f registry.MeterFilter, page registry.Page) ([]registry.Meter, error)
}

// meterCache keeps each park's meters in memory. A park is loaded on first use, reloaded after
// ttl, and reloaded at once (at most every minReload) when a reading names a meter it does not
// know, so a meter registered a moment ago is accepted without waiting for the ttl.
type meterCache struct {
	src       MeterSource
	ttl       time.Duration
	minReload time.Duration
	now       func() time.Time

	mu    sync.Mutex
	parks map[string]*parkMeters
}

type parkMeters struct {
	mu     sync.Mutex // held while loading
	meters map[string]registry.Meter
	known  bool // the park exists
	loaded time.Time
}

func newMeterCache(src MeterSource, ttl time.Duration, now func() time.Time) *meterCache {
	return &meterCache{src: src, ttl: ttl, minReload: time.Second, now: now, parks: map[string]*parkMeters{}}
}

// errUnknownPark: the park is not in the registry.
var errUnknownPark = errors.New("unknown park")

// lookup returns the meter of a park; found is false for a meter the registry does not have.
func (c *meterCache) lookup(ctx context.Context, park, meter string) (m registry.Meter, found bool, err error) {
	c.mu.Lock()
	pm := c.parks[park]
	if pm == nil {
		pm = &parkMeters{}
		c.parks[park] = pm
	}
	c.mu.Unlock()

	pm.mu.Lock()
	defer pm.mu.Unlock()
	now := c.now()
	stale := now.Sub(pm.loaded) > c.ttl
	if !stale && pm.known {
		if m, ok := pm.meters[meter]; ok {
			return m, true, nil
		}
	}
	if stale || now.Sub(pm.loaded) >= c.minReload {
		if err := c.load(ctx, park, pm); err != nil {
			return registry.Meter{}, false, err
		}
	}
	if !pm.known {
		return registry.Meter{}, false, errUnknownPark
	}
	m, ok := pm.meters[meter]
	return m, ok, nil
}

func (c *meterCache) load(ctx context.Context, park string, pm *parkMeters) error {
	ms, err := registry.All(func(p registry.Page) ([]registry.Meter, error) {
		return c.src.ListMeters(ctx, registry.MeterFilter{ParkID: park}, p)
	}, func(m registry.Meter) string { return m.ID })
	if errors.Is(err, registry.ErrNotFound) {
		pm.meters, pm.known, pm.loaded = nil, false, c.now()
		return nil
	}
	if err != nil {
		return fmt.Errorf("load meters of park %s: %w", park, err)
	}
	meters := make(map[string]registry.Meter, len(ms))
	for _, m := range ms {
		meters[m.ID] = m
	}
	pm.meters, pm.known, pm.loaded = meters, true, c.now()
	return nil
}
