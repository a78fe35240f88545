package factors

import (
	"cmp"
	"embed"
	"fmt"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// The shipped sets, one file per (id, version) named <id>_v<version>.yaml.
//
//go:embed sets/*.yaml
var shipped embed.FS

// Registry holds the shipped sets and the versions published since. Issued versions never
// change. Keeping published versions across restarts is the caller's: pass them to NewRegistry.
// A Registry is safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	byID map[string][]Set // versions ascending
}

// NewRegistry loads the shipped sets, then extra (published versions read back from storage).
// A set whose Base is given is resolved against the sets loaded before it, in any order.
func NewRegistry(extra ...Set) (*Registry, error) {
	files, err := shippedSets()
	if err != nil {
		return nil, err
	}
	r := &Registry{byID: map[string][]Set{}}
	if err := r.addAll(files); err != nil {
		return nil, fmt.Errorf("shipped factor sets: %w", err)
	}
	if err := r.addAll(extra); err != nil {
		return nil, fmt.Errorf("published factor sets: %w", err)
	}
	return r, nil
}

func shippedSets() ([]Set, error) {
	names, err := shipped.ReadDir("sets")
	if err != nil {
		return nil, fmt.Errorf("shipped factor sets: %w", err)
	}
	sets := make([]Set, 0, len(names))
	for _, e := range names {
		name := path.Join("sets", e.Name())
		data, err := shipped.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		s, err := ParseSet(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if want := s.ID + "_v" + strconv.Itoa(s.Version) + ".yaml"; e.Name() != want {
			return nil, fmt.Errorf("%s holds %s: name the file %s", name, s.Ref(), want)
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// addAll adds sets, each after the base it names.
func (r *Registry) addAll(sets []Set) error {
	pending := slices.Clone(sets)
	for len(pending) > 0 {
		var later []Set
		for _, s := range pending {
			if s.Base != "" {
				id, v, err := splitRef(s.Base)
				if err == nil && r.find(id, v) == nil && waits(pending, id, v) {
					later = append(later, s)
					continue
				}
			}
			if _, err := r.add(s); err != nil {
				return err
			}
		}
		if len(later) == len(pending) {
			_, err := r.add(later[0]) // bases that wait on each other: add names the missing one
			return err
		}
		pending = later
	}
	return nil
}

func waits(pending []Set, id string, v int) bool {
	return slices.ContainsFunc(pending, func(s Set) bool { return s.ID == id && s.Version == v })
}

// Get returns version version of set id.
func (r *Registry) Get(id string, version int) (Set, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.find(id, version)
	if s == nil {
		return Set{}, fmt.Errorf("factor set %s/%d: %w", id, version, registry.ErrNotFound)
	}
	return s.Clone(), nil
}

// Latest returns the version of set id in effect at at: the latest EffectiveFrom not after at,
// and of those the highest version (a correction issued for the same date).
func (r *Registry) Latest(id string, at time.Time) (Set, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *Set
	var bestStart time.Time
	for i := range r.byID[id] {
		s := &r.byID[id][i]
		start, _ := s.Start() // validated on add
		if start.After(at) {
			continue
		}
		if best == nil || start.After(bestStart) || start.Equal(bestStart) && s.Version > best.Version {
			best, bestStart = s, start
		}
	}
	if best == nil {
		if len(r.byID[id]) == 0 {
			return Set{}, fmt.Errorf("factor set %s: %w", id, registry.ErrNotFound)
		}
		return Set{}, fmt.Errorf("factor set %s: no version in effect at %s: %w", id, at.In(cst).Format(time.DateTime), registry.ErrNotFound)
	}
	return best.Clone(), nil
}

// List returns every version of every set, by id then version.
func (r *Registry) List() []Set {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.byID))
	for id := range r.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []Set
	for _, id := range ids {
		for _, s := range r.byID[id] {
			out = append(out, s.Clone())
		}
	}
	return out
}

// Publish resolves s against its Base, validates it and adds it. It returns the set as stored,
// which the caller persists. Publishing an issued (id, version) again with the same content is a
// no-op; with other content it is ErrIssued.
func (r *Registry) Publish(s Set) (Set, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.add(s)
}

// add does Publish's work; the caller holds the lock (or owns r).
func (r *Registry) add(s Set) (Set, error) {
	s = s.Clone()
	if s.Base != "" {
		id, v, err := splitRef(s.Base)
		if err != nil {
			return Set{}, fmt.Errorf("factor set %s: %w", s.Ref(), invalid("base", "%v", err))
		}
		base := r.find(id, v)
		if base == nil {
			return Set{}, fmt.Errorf("factor set %s: base %s: %w", s.Ref(), s.Base, registry.ErrNotFound)
		}
		s = derive(*base, s)
	}
	if err := Validate(s); err != nil {
		return Set{}, fmt.Errorf("factor set %s: %w", s.Ref(), err)
	}
	if old := r.find(s.ID, s.Version); old != nil {
		if string(FormatSet(*old)) == string(FormatSet(s)) {
			return old.Clone(), nil
		}
		return Set{}, fmt.Errorf("factor set %s: %w; publish version %d", s.Ref(), ErrIssued, r.next(s.ID))
	}
	vs := append(r.byID[s.ID], s)
	slices.SortFunc(vs, func(a, b Set) int { return cmp.Compare(a.Version, b.Version) })
	r.byID[s.ID] = vs
	return s.Clone(), nil
}

func (r *Registry) next(id string) int {
	vs := r.byID[id]
	return vs[len(vs)-1].Version + 1
}

func (r *Registry) find(id string, version int) *Set {
	for i := range r.byID[id] {
		if r.byID[id][i].Version == version {
			return &r.byID[id][i]
		}
	}
	return nil
}

// derive returns base's rows with s's rows replacing those of the same carrier or product, and
// s's own identity, rule, method, date and convention.
func derive(base, s Set) Set {
	s.Carriers = overlay(base.Carriers, s.Carriers, func(c Coefficient) string { return c.Carrier })
	s.Products = overlay(base.Products, s.Products, func(c Coefficient) string { return c.Product })
	return s
}

func overlay(base, rows []Coefficient, key func(Coefficient) string) []Coefficient {
	out := cloneRows(base)
	for _, r := range rows {
		if i := slices.IndexFunc(out, func(b Coefficient) bool { return key(b) == key(r) }); i >= 0 {
			out[i] = r.clone()
		} else {
			out = append(out, r.clone())
		}
	}
	return out
}
