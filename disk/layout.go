package disk

// Layout is the geometry and partition table of a disk image.
type Layout struct {
	Size       int64 // bytes
	SectorSize int   // logical sector size the table was read with (512, or 4096 for a 4Kn GPT)
	Kind       string
	MBR        *MBR // the MBR for Kind "mbr", the protective (or hybrid) MBR for Kind "gpt"
	GPT        *GPT // Kind "gpt" only
	EBRs       []EBR
	Partitions []Partition
	Warnings   []string // problems that did not stop the read; see the package doc
}

// Partition kinds of a Layout.
const (
	KindGPT  = "gpt"
	KindMBR  = "mbr"
	KindNone = "none" // no partition table: the whole image is partition 0
)

// Partition is one partition as Linux numbers it.
type Partition struct {
	Index      int   // 1-based as Linux numbers them; MBR logical ones start at 5; 0 for Kind "none"
	Start      int64 // bytes from the start of the disk
	Size       int64 // bytes
	GPT        *GPTEntry
	MBR        *MBREntry // for a logical partition: the data entry of its EBR (StartLBA relative to that EBR)
	Logical    bool      // inside an MBR extended partition
	Extended   bool      // an MBR extended container (types 0x05, 0x0f, 0x85)
	EBROffset  int64     // byte offset of the EBR describing a logical partition
	Filesystem string    // from Probe; "" when unknown or for an extended container
}

// Bootable reports the MBR active flag (always false for GPT partitions).
func (p *Partition) Bootable() bool { return p.MBR != nil && p.MBR.Status == 0x80 }

// End is the byte offset just past the partition.
func (p *Partition) End() int64 { return p.Start + p.Size }

// MBR is sector 0 of an MBR or GPT disk.
type MBR struct {
	BootCode      [440]byte
	DiskSignature uint32
	Reserved      uint16
	Entries       [4]MBREntry
	Signature     uint16 // 0xaa55 when valid (bytes 55 aa)
	Protective    bool   // exactly one 0xEE entry and nothing else (GPT only)
}

// MBREntry is one raw 16-byte MBR/EBR partition entry, decoded.
type MBREntry struct {
	Raw      [16]byte
	Status   byte // 0x80 active, 0x00 inactive
	StartCHS [3]byte
	Type     byte
	EndCHS   [3]byte
	StartLBA uint32
	Sectors  uint32
}

// Empty reports an unused entry. Like Linux, only the size counts: an entry
// of type 0 with sectors is still a partition.
func (e *MBREntry) Empty() bool { return e.Sectors == 0 }

// EBR is one extended boot record of the logical-partition chain.
type EBR struct {
	Offset  int64 // bytes from the start of the disk
	Entries [2]MBREntry
}

// GPT is a GUID partition table: the header that was used plus the backup.
type GPT struct {
	GPTHeader             // the header the partitions were read from
	Backup     *GPTHeader // the other header when it parsed (the backup normally, the primary when FromBackup)
	FromBackup bool       // the primary was bad and the backup header was used
	// BackupAgrees is true when the backup header is valid, points back at the
	// primary and describes the same entries (same bytes, same CRC).
	BackupAgrees bool
}

// GPTHeader is one GPT header, every field of the 92-byte structure.
type GPTHeader struct {
	Revision          uint32
	HeaderSize        uint32
	HeaderCRC         uint32
	Reserved          uint32
	MyLBA             uint64
	AlternateLBA      uint64
	FirstUsableLBA    uint64
	LastUsableLBA     uint64
	DiskGUID          string
	PartitionEntryLBA uint64
	NumEntries        uint32
	EntrySize         uint32
	EntriesCRC        uint32
}

// GPTEntry is one used GPT partition entry.
type GPTEntry struct {
	TypeGUID   string // canonical lower-case form
	PartGUID   string
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
	Name       string   // UTF-16LE decoded, up to the first NUL
	NameRaw    [72]byte // as stored
	Raw        []byte   // the whole entry (EntrySize bytes)
}
