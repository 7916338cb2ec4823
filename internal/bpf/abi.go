package bpf

import "github.com/bwtracker/bwtracker/internal/bpf/abi"

// The loader hands out the kernel's records as the abi package defines them
// (the cgo-free mirror of ebpf/bwtracker.h); these names are the same
// types, so callers may spell them bpf.FlowKey or abi.FlowKey.
type (
	FlowKey   = abi.FlowKey
	FlowVal   = abi.FlowVal
	FlowCache = abi.FlowCache
	ExecEvent = abi.ExecEvent
)

// Directions and protocols, as in abi.
const (
	DirTX       = abi.DirTX
	DirRX       = abi.DirRX
	ProtoOther  = abi.ProtoOther
	ProtoTCP    = abi.ProtoTCP
	ProtoUDP    = abi.ProtoUDP
	ProtoICMP   = abi.ProtoICMP
	ProtoRaw    = abi.ProtoRaw
	ProtoPacket = abi.ProtoPacket
	ProtoMPTCP  = abi.ProtoMPTCP
	// ProtoOverflow marks drained overflow/unattributed entries.
	ProtoOverflow = abi.ProtoOverflow
)

const (
	flowKeySize = abi.FlowKeySize
	flowValSize = abi.FlowValSize
)

var (
	dropCauses        = abi.DropCauses()
	CString           = abi.CString
	ProtoName         = abi.ProtoName
	DecodeFlowKey     = abi.DecodeFlowKey
	DecodePerCPU      = abi.DecodePerCPU
	DecodeCachePerCPU = abi.DecodeCachePerCPU
	DecodeExecEvent   = abi.DecodeExecEvent
	LosesBytes        = abi.LosesBytes
	DetailOnly        = abi.DetailOnly
)
