package grpcapi

import (
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/accounting"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
)

// valueMap keeps the numbers of a map that can be computed (proto maps have no null).
func valueMap(m map[string]*float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func componentsToPB(c accounting.Components) *pb.Co2Components {
	return &pb.Co2Components{Fuel: c.Fuel, Transform: c.Transform, Electricity: c.Electricity, Heat: c.Heat, Process: c.Process}
}

func electricityToPB(e accounting.ElectricityKWh) *pb.ElectricityKwh {
	return &pb.ElectricityKwh{Grid: e.Grid, GridExport: e.GridExport, DirectGreen: e.DirectGreen,
		DirectGreenExport: e.DirectGreenExport, GreenTrade: e.GreenTrade, Certificate: e.Certificate}
}

func blockToPB(b accounting.Block) *pb.IndicatorBlock {
	return &pb.IndicatorBlock{
		EnterpriseId: b.Enterprise, EnergyTceEqual: b.EnergyTceEqual, EnergyTceEquivalent: b.EnergyTceEquivalent,
		Co2T: b.CO2T, Co2ByComponentT: componentsToPB(b.CO2ByComponentT),
		Co2ByCarrierT: valueMap(b.CO2ByCarrierT), Co2ByProductT: valueMap(b.CO2ByProductT),
		Co2PerTce: b.CO2PerTce, ValueAdded_10KCny: b.ValueAdded10kCNY, Co2Per_10KCnyVa: b.CO2Per10kCNYVA,
		CleanEnergyShare: b.CleanEnergyShare, NonFossilShare: b.NonFossilShare,
		ElectricityKwh: electricityToPB(b.ElectricityKWh), DirectGreenShare: b.DirectGreenShare,
		Completeness: b.Completeness, EstimatedShare: b.EstimatedShare, MissingCoefficients: b.MissingCoefficients,
	}
}

func thresholdToPB(t accounting.Threshold) *pb.Threshold {
	return &pb.Threshold{Scheme: t.Scheme, Indicator: t.Indicator, Kind: t.Kind, MilestoneYear: int32(t.MilestoneYear),
		SizeClass: t.SizeClass, Op: t.Op, Limit: t.Limit, Value: t.Value, Pass: t.Pass, Estimate: t.Estimate, Note: t.Note}
}

func allocationToPB(a accounting.InstrumentAllocation) *pb.InstrumentAllocation {
	return &pb.InstrumentAllocation{Id: a.ID, EnterpriseId: a.Enterprise, Kind: a.Kind, Mwh: a.MWh,
		PeriodMwh: a.PeriodMWh, BookedMwh: a.BookedMWh, OverAllocatedMwh: a.OverAllocatedMWh}
}

func operatorValueToPB(o accounting.OperatorValue) *pb.OperatorValue {
	return &pb.OperatorValue{Coefficient: o.Coefficient, Value: o.Value, Source: o.Source}
}

func indicatorsToPB(park string, r accounting.Result, loc *time.Location) *pb.Indicators {
	b := blockToPB(r.Block)
	out := &pb.Indicators{
		ParkId: park, From: r.From.In(loc).Format(time.RFC3339), To: r.To.In(loc).Format(time.RFC3339),
		FactorSet: &pb.FactorSetRef{Id: r.FactorSet.ID, Version: int32(r.FactorSet.Version),
			Method: r.FactorSet.Method, ElectricityConvention: r.FactorSet.ElectricityConvention},
		Estimate:       r.Estimate,
		EnergyTceEqual: b.EnergyTceEqual, EnergyTceEquivalent: b.EnergyTceEquivalent, Co2T: b.Co2T,
		Co2ByComponentT: b.Co2ByComponentT, Co2ByCarrierT: b.Co2ByCarrierT, Co2ByProductT: b.Co2ByProductT,
		Co2PerTce: b.Co2PerTce, ValueAdded_10KCny: b.ValueAdded_10KCny, Co2Per_10KCnyVa: b.Co2Per_10KCnyVa,
		CleanEnergyShare: b.CleanEnergyShare, NonFossilShare: b.NonFossilShare, ElectricityKwh: b.ElectricityKwh,
		DirectGreenShare: b.DirectGreenShare, Completeness: b.Completeness, EstimatedShare: b.EstimatedShare,
		MissingCoefficients:  b.MissingCoefficients,
		AnnualEnergyTceEqual: r.AnnualEnergyTceEqual,
		Thresholds:           mapSlice(r.Thresholds, thresholdToPB),
		Instruments:          mapSlice(r.Instruments, allocationToPB),
		OperatorSupplied:     mapSlice(r.OperatorSupplied, operatorValueToPB),
		Notes:                r.Notes,
		Enterprises:          mapSlice(r.Enterprises, blockToPB),
	}
	if r.ParkLevel != nil {
		out.ParkLevel = blockToPB(*r.ParkLevel)
	}
	return out
}
