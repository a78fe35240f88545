package grpcapi

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func parkToPB(p registry.Park) *pb.Park {
	return &pb.Park{Id: p.ID, Name: p.Name, Province: p.Province, Timezone: p.Timezone}
}

func parkFromPB(p *pb.Park) registry.Park {
	return registry.Park{ID: p.GetId(), Name: p.GetName(), Province: p.GetProvince(), Timezone: p.GetTimezone()}
}

func enterpriseToPB(e registry.Enterprise) *pb.Enterprise {
	return &pb.Enterprise{
		Id: e.ID, ParkId: e.ParkID, Name: e.Name, IndustryCode: e.IndustryCode,
		CreditCode: e.CreditCode, KeyEnergyUser: e.KeyEnergyUser,
	}
}

func enterpriseFromPB(e *pb.Enterprise) registry.Enterprise {
	return registry.Enterprise{
		ID: e.GetId(), ParkID: e.GetParkId(), Name: e.GetName(), IndustryCode: e.GetIndustryCode(),
		CreditCode: e.GetCreditCode(), KeyEnergyUser: e.GetKeyEnergyUser(),
	}
}

func meterToPB(m registry.Meter) *pb.Meter {
	out := &pb.Meter{
		Id: m.ID, ParkId: m.ParkID, EnterpriseId: m.EnterpriseID, Carrier: string(m.Carrier),
		Direction: string(m.Direction), Kind: string(m.Kind), Unit: m.Unit,
		Multiplier: proto.Float64(m.Multiplier), Rollover: m.Rollover,
		GreenClass: string(m.GreenClass), GatewayId: m.GatewayID, IntervalSeconds: m.IntervalSeconds,
	}
	if m.RatedCapacity > 0 {
		out.RatedCapacity = proto.Float64(m.RatedCapacity)
	}
	return out
}

// meterFromPB converts a request meter; an absent multiplier means the default 1, a present
// one is kept as sent (0 included) so validation can refuse it.
func meterFromPB(m *pb.Meter) registry.Meter {
	mult := 1.0
	if m.Multiplier != nil {
		mult = m.GetMultiplier()
	}
	return registry.Meter{
		ID: m.GetId(), ParkID: m.GetParkId(), EnterpriseID: m.GetEnterpriseId(),
		Carrier: registry.Carrier(m.GetCarrier()), Direction: registry.Direction(m.GetDirection()),
		Kind: registry.Kind(m.GetKind()), Unit: m.GetUnit(), Multiplier: mult,
		Rollover: m.GetRollover(), GreenClass: registry.GreenClass(m.GetGreenClass()),
		GatewayID: m.GetGatewayId(), IntervalSeconds: m.GetIntervalSeconds(),
		RatedCapacity: m.GetRatedCapacity(),
	}
}

func gatewayToPB(g registry.Gateway) *pb.Gateway {
	return &pb.Gateway{Id: g.ID, ParkId: g.ParkID, Name: g.Name}
}

func gatewayFromPB(g *pb.Gateway) registry.Gateway {
	return registry.Gateway{ID: g.GetId(), ParkID: g.GetParkId(), Name: g.GetName()}
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
