// Package grpcapi implements parkcarbon's gRPC services. Each method is thin: authorize the
// caller, convert the request, call the domain service, map the error through apierr. The REST
// facade calls these same methods in-process.
package grpcapi

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/parkcarbon/parkcarbon/pkg/api/apierr"
	"github.com/parkcarbon/parkcarbon/pkg/auth"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Registry serves RegistryService over a registry.Service.
type Registry struct {
	pb.UnimplementedRegistryServiceServer
	Service *registry.Service
}

var _ pb.RegistryServiceServer = (*Registry)(nil)

// authorize checks the caller in ctx against access on r.
func authorize(ctx context.Context, a auth.Access, r auth.Resource) error {
	return auth.PrincipalFrom(ctx).Authorize(a, r)
}

func parkRes(park string) auth.Resource { return auth.Resource{Kind: auth.KindPark, ParkID: park} }

func page(size int32, token string) registry.Page {
	return registry.Page{Size: int(size), After: token}
}

// nextToken returns the page token after a full page: the last id.
func nextToken[T any](items []T, size int32, id func(T) string) string {
	if len(items) == 0 || len(items) < registry.MaxPageSize && (size <= 0 || len(items) < int(size)) {
		return ""
	}
	return id(items[len(items)-1])
}

// CreatePark creates a park (admin).
func (s *Registry) CreatePark(ctx context.Context, req *pb.CreateParkRequest) (*pb.Park, error) {
	if err := authorize(ctx, auth.Admin, parkRes(req.GetPark().GetId())); err != nil {
		return nil, apierr.Status(err)
	}
	p, err := s.Service.CreatePark(ctx, parkFromPB(req.GetPark()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	return parkToPB(p), nil
}

// GetPark returns a park the caller may see.
func (s *Registry) GetPark(ctx context.Context, req *pb.GetParkRequest) (*pb.Park, error) {
	if err := authorize(ctx, auth.Read, parkRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	p, err := s.Service.GetPark(ctx, req.GetParkId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return parkToPB(p), nil
}

// ListParks lists the parks the caller may see.
func (s *Registry) ListParks(ctx context.Context, req *pb.ListParksRequest) (*pb.ListParksResponse, error) {
	pr := auth.PrincipalFrom(ctx)
	if pr == nil {
		return nil, apierr.Status(auth.ErrUnauthenticated)
	}
	var parks []registry.Park
	if pr.Role == auth.RoleAdmin {
		var err error
		if parks, err = s.Service.ListParks(ctx, page(req.GetPageSize(), req.GetPageToken())); err != nil {
			return nil, apierr.Status(err)
		}
	} else {
		// A scoped token sees few parks: read them one by one, in id order.
		ids := slices.Sorted(slices.Values(pr.ParkIDs))
		for _, id := range ids {
			if id <= req.GetPageToken() || !pr.SeesPark(id) {
				continue
			}
			p, err := s.Service.GetPark(ctx, id)
			if err != nil {
				continue // a park deleted after the token was issued
			}
			parks = append(parks, p)
		}
	}
	return &pb.ListParksResponse{
		Parks:         mapSlice(parks, parkToPB),
		NextPageToken: nextToken(parks, req.GetPageSize(), func(p registry.Park) string { return p.ID }),
	}, nil
}

// UpdatePark changes the fields of a park named by the update mask.
func (s *Registry) UpdatePark(ctx context.Context, req *pb.UpdateParkRequest) (*pb.Park, error) {
	id := req.GetPark().GetId()
	if err := authorize(ctx, auth.Write, parkRes(id)); err != nil {
		return nil, apierr.Status(err)
	}
	p, err := s.Service.UpdatePark(ctx, id, func(p *registry.Park) error {
		cur := parkToPB(*p)
		if err := applyMask(cur, req.GetPark(), req.GetUpdateMask()); err != nil {
			return err
		}
		*p = parkFromPB(cur)
		return nil
	})
	if err != nil {
		return nil, apierr.Status(err)
	}
	return parkToPB(p), nil
}

// DeletePark deletes a park (admin); with cascade, its enterprises, meters and gateways too.
func (s *Registry) DeletePark(ctx context.Context, req *pb.DeleteParkRequest) (*emptypb.Empty, error) {
	if err := authorize(ctx, auth.Admin, parkRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	if err := s.Service.DeletePark(ctx, req.GetParkId(), req.GetCascade()); err != nil {
		return nil, apierr.Status(err)
	}
	return &emptypb.Empty{}, nil
}

func enterpriseRes(park, id string) auth.Resource {
	return auth.Resource{Kind: auth.KindEnterprise, ParkID: park, EnterpriseID: id}
}

// CreateEnterprise adds an enterprise to a park.
func (s *Registry) CreateEnterprise(ctx context.Context, req *pb.CreateEnterpriseRequest) (*pb.Enterprise, error) {
	e := enterpriseFromPB(req.GetEnterprise())
	if err := inPark(&e.ParkID, req.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Write, enterpriseRes(e.ParkID, e.ID)); err != nil {
		return nil, apierr.Status(err)
	}
	e, err := s.Service.CreateEnterprise(ctx, e)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return enterpriseToPB(e), nil
}

// GetEnterprise returns one enterprise.
func (s *Registry) GetEnterprise(ctx context.Context, req *pb.GetEnterpriseRequest) (*pb.Enterprise, error) {
	if err := authorize(ctx, auth.Read, enterpriseRes(req.GetParkId(), req.GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	e, err := s.Service.GetEnterprise(ctx, req.GetParkId(), req.GetEnterpriseId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	return enterpriseToPB(e), nil
}

// ListEnterprises lists a park's enterprises the caller may see.
func (s *Registry) ListEnterprises(ctx context.Context, req *pb.ListEnterprisesRequest) (*pb.ListEnterprisesResponse, error) {
	if err := authorize(ctx, auth.Read, parkRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	es, err := s.Service.ListEnterprises(ctx, req.GetParkId(), page(req.GetPageSize(), req.GetPageToken()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	next := nextToken(es, req.GetPageSize(), func(e registry.Enterprise) string { return e.ID })
	es = slices.DeleteFunc(es, func(e registry.Enterprise) bool {
		return authorize(ctx, auth.Read, enterpriseRes(e.ParkID, e.ID)) != nil
	})
	return &pb.ListEnterprisesResponse{Enterprises: mapSlice(es, enterpriseToPB), NextPageToken: next}, nil
}

// UpdateEnterprise changes the fields of an enterprise named by the update mask.
func (s *Registry) UpdateEnterprise(ctx context.Context, req *pb.UpdateEnterpriseRequest) (*pb.Enterprise, error) {
	id := req.GetEnterprise().GetId()
	if err := authorize(ctx, auth.Write, enterpriseRes(req.GetParkId(), id)); err != nil {
		return nil, apierr.Status(err)
	}
	e, err := s.Service.UpdateEnterprise(ctx, req.GetParkId(), id, func(e *registry.Enterprise) error {
		cur := enterpriseToPB(*e)
		if err := applyMask(cur, req.GetEnterprise(), req.GetUpdateMask()); err != nil {
			return err
		}
		*e = enterpriseFromPB(cur)
		return nil
	})
	if err != nil {
		return nil, apierr.Status(err)
	}
	return enterpriseToPB(e), nil
}

func meterRes(park, enterprise string) auth.Resource {
	return auth.Resource{Kind: auth.KindMeter, ParkID: park, EnterpriseID: enterprise}
}

// CreateMeter registers a meter.
func (s *Registry) CreateMeter(ctx context.Context, req *pb.CreateMeterRequest) (*pb.Meter, error) {
	m := meterFromPB(req.GetMeter())
	if err := inPark(&m.ParkID, req.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Write, meterRes(m.ParkID, m.EnterpriseID)); err != nil {
		return nil, apierr.Status(err)
	}
	m, err := s.Service.CreateMeter(ctx, m)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return meterToPB(m), nil
}

// GetMeter returns one meter; an enterprise token sees only its own enterprise's meters.
func (s *Registry) GetMeter(ctx context.Context, req *pb.GetMeterRequest) (*pb.Meter, error) {
	if err := authorize(ctx, auth.Read, parkRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	m, err := s.Service.GetMeter(ctx, req.GetParkId(), req.GetMeterId())
	if err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Read, meterRes(m.ParkID, m.EnterpriseID)); err != nil {
		return nil, apierr.Status(err)
	}
	return meterToPB(m), nil
}

// ListMeters lists a park's meters, narrowed to the caller's enterprise for enterprise tokens.
func (s *Registry) ListMeters(ctx context.Context, req *pb.ListMetersRequest) (*pb.ListMetersResponse, error) {
	f := registry.MeterFilter{ParkID: req.GetParkId(), EnterpriseID: req.GetEnterpriseId(), GatewayID: req.GetGatewayId()}
	if pr := auth.PrincipalFrom(ctx); pr != nil && pr.Role == auth.RoleEnterprise {
		if f.EnterpriseID == "" {
			f.EnterpriseID = pr.EnterpriseID
		}
	}
	if err := authorize(ctx, auth.Read, parkRes(f.ParkID)); err != nil {
		return nil, apierr.Status(err)
	}
	if f.EnterpriseID != "" {
		if err := authorize(ctx, auth.Read, meterRes(f.ParkID, f.EnterpriseID)); err != nil {
			return nil, apierr.Status(err)
		}
	}
	ms, err := s.Service.ListMeters(ctx, f, page(req.GetPageSize(), req.GetPageToken()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	next := nextToken(ms, req.GetPageSize(), func(m registry.Meter) string { return m.ID })
	ms = slices.DeleteFunc(ms, func(m registry.Meter) bool {
		return authorize(ctx, auth.Read, meterRes(m.ParkID, m.EnterpriseID)) != nil
	})
	return &pb.ListMetersResponse{Meters: mapSlice(ms, meterToPB), NextPageToken: next}, nil
}

// UpdateMeter changes the fields of a meter named by the update mask.
func (s *Registry) UpdateMeter(ctx context.Context, req *pb.UpdateMeterRequest) (*pb.Meter, error) {
	id := req.GetMeter().GetId()
	if err := authorize(ctx, auth.Write, meterRes(req.GetParkId(), req.GetMeter().GetEnterpriseId())); err != nil {
		return nil, apierr.Status(err)
	}
	m, err := s.Service.UpdateMeter(ctx, req.GetParkId(), id, func(m *registry.Meter) error {
		cur := meterToPB(*m)
		if err := applyMask(cur, req.GetMeter(), req.GetUpdateMask()); err != nil {
			return err
		}
		*m = meterFromPB(cur)
		return nil
	})
	if err != nil {
		return nil, apierr.Status(err)
	}
	return meterToPB(m), nil
}

func gatewayRes(park string) auth.Resource {
	return auth.Resource{Kind: auth.KindGateway, ParkID: park}
}

// CreateGateway registers a gateway and returns its MQTT password once.
func (s *Registry) CreateGateway(ctx context.Context, req *pb.CreateGatewayRequest) (*pb.Gateway, error) {
	g := gatewayFromPB(req.GetGateway())
	if err := inPark(&g.ParkID, req.GetParkId()); err != nil {
		return nil, apierr.Status(err)
	}
	if err := authorize(ctx, auth.Write, gatewayRes(g.ParkID)); err != nil {
		return nil, apierr.Status(err)
	}
	g, password, err := s.Service.CreateGateway(ctx, g)
	if err != nil {
		return nil, apierr.Status(err)
	}
	out := gatewayToPB(g)
	out.Password = password
	return out, nil
}

// ListGateways lists a park's gateways (never their credentials).
func (s *Registry) ListGateways(ctx context.Context, req *pb.ListGatewaysRequest) (*pb.ListGatewaysResponse, error) {
	if err := authorize(ctx, auth.Read, gatewayRes(req.GetParkId())); err != nil {
		return nil, apierr.Status(err)
	}
	gs, err := s.Service.ListGateways(ctx, req.GetParkId(), page(req.GetPageSize(), req.GetPageToken()))
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &pb.ListGatewaysResponse{
		Gateways:      mapSlice(gs, gatewayToPB),
		NextPageToken: nextToken(gs, req.GetPageSize(), func(g registry.Gateway) string { return g.ID }),
	}, nil
}

// inPark sets a resource's park from the request path, refusing a body that names another.
func inPark(field *string, park string) error {
	if err := registry.CheckID("park_id", park); err != nil {
		return err
	}
	if *field != "" && *field != park {
		return &registry.FieldError{Field: "park_id", Reason: "body names park " + *field + " but the request is for park " + park}
	}
	*field = park
	return nil
}
