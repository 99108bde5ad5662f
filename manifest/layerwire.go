package manifest

import "fmt"

// The binary layer (layer format version 1):
//
//	"MISLAYER" uvarint(version) body
//
// using the same field encodings as the binary manifest.
const (
	layerMagic         = "MISLAYER"
	LayerFormatVersion = 1
)

// EncodeLayer serialises l. The output is deterministic.
func EncodeLayer(l *Layer) []byte {
	n := 1024 + 40*len(l.ResidualData.Items) + 8*len(l.Residual.Items)
	for i := range l.Filesystems {
		n += 1200 + entriesSize(l.Filesystems[i].Changed) + 4*len(l.Filesystems[i].Removed)
	}
	e := encoder{b: make([]byte, 0, n)}
	e.b = append(e.b, layerMagic...)
	e.uvarint(LayerFormatVersion)
	e.varint(l.DiskSize)
	e.bool(l.Exact)
	e.bool(l.Layout != nil)
	if l.Layout != nil {
		e.layout(l.Layout)
	}
	e.listOps(l.Residual.Ops)
	e.runs(l.Residual.Items)
	e.listOps(l.ResidualData.Ops)
	e.refs(l.ResidualData.Items)
	e.uvarint(uint64(len(l.Filesystems)))
	for i := range l.Filesystems {
		fl := &l.Filesystems[i]
		e.varint(int64(fl.Base))
		e.bool(fl.Params != nil)
		if fl.Params != nil {
			e.fsParams(fl.Params)
		}
		e.entries(fl.Changed)
		e.uvarint(uint64(len(fl.Removed)))
		var prev uint32
		for _, ino := range fl.Removed {
			e.varint(int64(ino) - int64(prev))
			prev = ino
		}
	}
	return e.b
}

// DecodeLayer parses a layer written by EncodeLayer.
func DecodeLayer(b []byte) (*Layer, error) {
	if len(b) < len(layerMagic) || string(b[:len(layerMagic)]) != layerMagic {
		return nil, fmt.Errorf("layer: unknown header %q", b[:min(len(b), len(layerMagic))])
	}
	return decodeLayer(b)
}

func decodeLayer(b []byte) (*Layer, error) {
	d := newDecoder(b, len(layerMagic))
	if v := d.uvarint(); d.err == nil && v != LayerFormatVersion {
		return nil, fmt.Errorf("layer format version %d is not supported (this mis reads %d)", v, LayerFormatVersion)
	}
	l := &Layer{}
	l.DiskSize = d.varint()
	l.Exact = d.bool()
	if d.bool() {
		lay := d.layout()
		l.Layout = &lay
	}
	l.Residual.Ops = d.listOps()
	l.Residual.Items = d.runs()
	l.ResidualData.Ops = d.listOps()
	l.ResidualData.Items = d.refs()
	n := d.count(4, "filesystem")
	if n > 0 {
		l.Filesystems = make([]FSLayer, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		fl := &l.Filesystems[i]
		fl.Base = d.int("base filesystem")
		if d.bool() {
			fl.Params = &Filesystem{}
			d.fsParams(fl.Params)
		}
		fl.Changed = d.entries()
		k := d.count(1, "whiteout")
		if k > 0 {
			fl.Removed = make([]uint32, k)
		}
		var prev uint32
		for j := 0; j < k && d.err == nil; j++ {
			ino := int64(prev) + d.varint()
			if ino < 0 || ino > 1<<32-1 {
				d.fail("whiteout inode %d out of range", ino)
			}
			fl.Removed[j] = uint32(ino)
			prev = fl.Removed[j]
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return l, nil
}

func (e *encoder) listOps(ops []ListOp) {
	e.uvarint(uint64(len(ops)))
	end := 0
	for _, op := range ops {
		if op.Copy {
			e.uvarint(uint64(op.N)<<1 | 1)
			e.varint(int64(op.From - end))
			end = op.From + op.N
		} else {
			e.uvarint(uint64(op.N) << 1)
		}
	}
}

func (d *decoder) listOps() []ListOp {
	n := d.count(1, "list edit")
	if n == 0 {
		return nil
	}
	ops := make([]ListOp, n)
	end := int64(0)
	for i := 0; i < n && d.err == nil; i++ {
		v := d.uvarint()
		if v>>1 > maxListItems {
			d.fail("list edit of %d items", v>>1)
			break
		}
		ops[i].N = int(v >> 1)
		if v&1 == 1 {
			from := end + d.varint()
			if from < 0 || from > maxListItems {
				d.fail("list copy from item %d", from)
				break
			}
			ops[i] = ListOp{Copy: true, From: int(from), N: ops[i].N}
			end = from + int64(ops[i].N)
		}
	}
	return ops
}
