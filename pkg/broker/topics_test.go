package broker

import (
	"strings"
	"testing"
)

func TestTopicsFor(t *testing.T) {
	got := TopicsFor("p1", "gw1")
	want := GatewayTopics{
		Publish:   []string{"parks/p1/gateways/gw1/readings", "parks/p1/gateways/gw1/readings/pb"},
		Subscribe: "parks/p1/gateways/gw1/acks",
	}
	if strings.Join(got.Publish, ",") != strings.Join(want.Publish, ",") || got.Subscribe != want.Subscribe {
		t.Errorf("TopicsFor = %+v, want %+v", got, want)
	}
}

func TestServiceMay(t *testing.T) {
	tests := []struct {
		topic string
		write bool
		want  bool
	}{
		{"parks", false, true},
		{"parks/#", false, true},
		{"parks/+/gateways/+/readings", false, true},
		{"parks/p1/gateways/gw1/acks", true, true},
		{"$share/collectors/parks/+/gateways/+/readings", false, true},
		{"$share/collectors/parks", false, true},
		{"$share/collectors/parks/#", false, true},
		{"$share/collectors/parks/p1", true, false}, // a publish topic is never a share
		{"$share//parks/#", false, false},
		{"$share/a+b/parks/#", false, false},
		{"$share/collectors", false, false},
		{"$share/collectors/#", false, false},
		{"$share/collectors/$share/g/parks/#", false, false},
		{"#", false, false},
		{"+/gateways/+/readings", false, false},
		{"parksx", false, false},
		{"parksx/a", true, false},
		{"$SYS/#", false, false},
		{"", false, false},
		{"/parks/a", true, false},
	}
	for _, tt := range tests {
		if got := serviceMay(tt.topic, tt.write); got != tt.want {
			t.Errorf("serviceMay(%q, write %v) = %v, want %v", tt.topic, tt.write, got, tt.want)
		}
	}
}

func TestCheckUsername(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"collector", true},
		{"gw-01.a_b", true},
		{"Collector@park/1", true},
		{"", false},
		{"a b", false},
		{"a:b", false},
		{"a#b", false},
		{"tab\there", false},
		{"new\nline", false},
		{"收集器", false},
		{strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		if err := CheckUsername(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckUsername(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// FuzzTopicRights checks the invariants of the ACL on arbitrary topic strings: a gateway may
// use only its exact topics, and a service account nothing outside parks/.
func FuzzTopicRights(f *testing.F) {
	for _, s := range []string{"parks/p1/gateways/gw1/readings", "$share/g/parks/#", "#", "parks", "$share/g/#", "parks/p1/gateways/gw1/readings/pb"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, topic string, write bool) {
		gt := TopicsFor("p1", "gw1")
		if gt.mayPublish(topic) && !strings.HasPrefix(topic, "parks/p1/gateways/gw1/readings") {
			t.Errorf("gateway may publish %q", topic)
		}
		if gt.mayPublish(topic) && strings.ContainsAny(topic, "+#") {
			t.Errorf("gateway may publish wildcard %q", topic)
		}
		if serviceMay(topic, write) {
			rest := topic
			if !write && strings.HasPrefix(topic, "$share/") {
				parts := strings.SplitN(topic, "/", 3)
				if len(parts) < 3 || parts[1] == "" {
					t.Fatalf("service may use malformed share %q", topic)
				}
				rest = parts[2]
			}
			if rest != "parks" && !strings.HasPrefix(rest, "parks/") {
				t.Errorf("service may use %q (write %v) outside parks/", topic, write)
			}
		}
	})
}
