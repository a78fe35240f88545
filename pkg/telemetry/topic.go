package telemetry

import (
	"regexp"
	"strings"
)

// Topic suffixes and the shared subscription the collectors use.
const (
	ReadingsSuffix      = "readings"
	ProtoReadingsSuffix = "readings/pb"
	AcksSuffix          = "acks"
	// SharedSubscription spreads readings over every collector of the group.
	SharedSubscription = "$share/collectors/parks/+/gateways/+/readings"
	// SharedProtoSubscription is the same for protobuf batches.
	SharedProtoSubscription = "$share/collectors/parks/+/gateways/+/readings/pb"
)

var topicID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ReadingsTopic is where gateway gw of park publishes JSON batches.
func ReadingsTopic(park, gw string) string {
	return "parks/" + park + "/gateways/" + gw + "/" + ReadingsSuffix
}

// AcksTopic is where the collector acknowledges gateway gw's batches.
func AcksTopic(park, gw string) string {
	return "parks/" + park + "/gateways/" + gw + "/" + AcksSuffix
}

// Topic is a parsed readings topic.
type Topic struct {
	Park    string
	Gateway string
	// Proto is true for the /pb suffix: the payload is a protobuf ReadingBatch.
	Proto bool
}

// ParseTopic parses parks/{park}/gateways/{gw}/readings[/pb].
func ParseTopic(topic string) (Topic, error) {
	parts := strings.Split(topic, "/")
	if len(parts) < 5 || len(parts) > 6 || parts[0] != "parks" || parts[2] != "gateways" || parts[4] != ReadingsSuffix {
		return Topic{}, invalidf("topic %q is not parks/{park}/gateways/{gateway}/readings[/pb]", topic)
	}
	t := Topic{Park: parts[1], Gateway: parts[3]}
	if len(parts) == 6 {
		if parts[5] != "pb" {
			return Topic{}, invalidf("topic %q: unknown suffix %q", topic, parts[5])
		}
		t.Proto = true
	}
	if !topicID.MatchString(t.Park) || !topicID.MatchString(t.Gateway) {
		return Topic{}, invalidf("topic %q: park or gateway is not a valid id", topic)
	}
	return t, nil
}

func toValidUTF8(p []byte) string {
	// PostgreSQL text cannot hold NUL either.
	return strings.ReplaceAll(strings.ToValidUTF8(string(p), "\uFFFD"), "\x00", "\uFFFD")
}
