package broker

import (
	"errors"
	"fmt"
	"strings"
)

// The rights below are the single source for both the embedded broker's ACL hook and the
// Mosquitto ACL file, so the two brokers grant exactly the same access.

// GatewayTopics are the topics one gateway may use (DESIGN.md §4).
type GatewayTopics struct {
	// Publish lists the topics the gateway may publish to: its JSON readings and the protobuf
	// variant with the /pb suffix.
	Publish []string
	// Subscribe is the one topic the gateway may subscribe to: the collector's acks for it.
	Subscribe string
}

// TopicsFor returns the topics of gateway id in park.
func TopicsFor(park, id string) GatewayTopics {
	prefix := "parks/" + park + "/gateways/" + id + "/"
	return GatewayTopics{
		Publish:   []string{prefix + "readings", prefix + "readings/pb"},
		Subscribe: prefix + "acks",
	}
}

func (t GatewayTopics) mayPublish(topic string) bool {
	for _, p := range t.Publish {
		if topic == p {
			return true
		}
	}
	return false
}

// serviceRoot is the subtree service accounts may publish and subscribe in.
const serviceRoot = "parks"

// serviceMay reports whether a service account may use topic: a topic name or filter under
// parks/, and for subscriptions (write false) also a shared subscription $share/<group>/parks/...
func serviceMay(topic string, write bool) bool {
	if !write {
		if rest, ok := strings.CutPrefix(topic, "$share/"); ok {
			group, filter, ok := strings.Cut(rest, "/")
			if !ok || group == "" || strings.ContainsAny(group, "+#") {
				return false
			}
			topic = filter
		}
	}
	return topic == serviceRoot || strings.HasPrefix(topic, serviceRoot+"/")
}

// CheckUsername reports whether name can be an MQTT user name in a Mosquitto password file and
// ACL file: non-empty, at most 64 bytes, printable ASCII without spaces, ':' or '#'.
func CheckUsername(name string) error {
	if name == "" {
		return errors.New("user name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("user name %q is longer than 64 bytes", name)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == ':' || r == '#' {
			return fmt.Errorf("user name %q may contain only printable ASCII without spaces, ':' or '#'", name)
		}
	}
	return nil
}

// checkHash reports whether hash can go into a Mosquitto password file line unchanged.
func checkHash(hash string) error {
	if !strings.HasPrefix(hash, "$7$") || strings.ContainsAny(hash, ": \t\r\n") {
		return errors.New("password hash is not in Mosquitto's $7$ format")
	}
	return nil
}
