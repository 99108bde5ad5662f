package repo

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	"mis/chunker"
)

func zstdLevel(name string) (zstd.EncoderLevel, error) {
	switch name {
	case ZstdFastest:
		return zstd.SpeedFastest, nil
	case ZstdDefault:
		return zstd.SpeedDefault, nil
	case ZstdBetter:
		return zstd.SpeedBetterCompression, nil
	case ZstdBest:
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("unknown zstd_level %q (want %s, %s, %s or %s)", name, ZstdFastest, ZstdDefault, ZstdBetter, ZstdBest)
}

// Encoders and the decoder are shared: EncodeAll and DecodeAll are safe
// for concurrent use and keep internal pools of per-call state, so one
// object per level serves every goroutine without re-allocating tables.
var (
	encodersMu sync.Mutex
	encoders   = map[zstd.EncoderLevel]*zstd.Encoder{}

	decoderOnce sync.Once
	decoder     *zstd.Decoder
)

func encoderFor(level zstd.EncoderLevel) *zstd.Encoder {
	encodersMu.Lock()
	defer encodersMu.Unlock()
	if e, ok := encoders[level]; ok {
		return e
	}
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // chunks are verified by their BLAKE3 id
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		panic(fmt.Sprintf("zstd encoder options are invalid: %v", err)) // static options; cannot fail
	}
	encoders[level] = e
	return e
}

func sharedDecoder() *zstd.Decoder {
	decoderOnce.Do(func() {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderMaxMemory(uint64(chunker.MaxLimit)*2),
			zstd.WithDecodeAllCapLimit(true), // never grow dst beyond its capacity
		)
		if err != nil {
			panic(fmt.Sprintf("zstd decoder options are invalid: %v", err))
		}
		decoder = d
	})
	return decoder
}

// compressChunk returns the stored form of data: zstd if it is smaller,
// else data itself. dst is scratch space that may be reused.
func compressChunk(enc *zstd.Encoder, data, dst []byte) (stored []byte, flags uint8) {
	out := enc.EncodeAll(data, dst[:0])
	if len(out) < len(data) {
		return out, flagZstd
	}
	return data, flagRaw
}

// decodeChunk turns a stored body back into the raw chunk and checks it
// against id. The error says what went wrong; callers add where.
func decodeChunk(id chunker.ID, flags uint8, stored []byte, rawLen uint32, dst []byte) ([]byte, error) {
	if rawLen > chunker.MaxLimit {
		return nil, fmt.Errorf("raw length %d exceeds the largest possible chunk", rawLen)
	}
	var raw []byte
	switch flags {
	case flagRaw:
		if uint32(len(stored)) != rawLen {
			return nil, fmt.Errorf("raw chunk is %d bytes, index says %d", len(stored), rawLen)
		}
		raw = append(dst[:0], stored...)
	case flagZstd:
		if cap(dst) < int(rawLen) {
			dst = make([]byte, 0, rawLen)
		}
		out, err := sharedDecoder().DecodeAll(stored, dst[:0:rawLen])
		if err != nil {
			return nil, fmt.Errorf("decompress: %v", err)
		}
		if uint32(len(out)) != rawLen {
			return nil, fmt.Errorf("decompressed to %d bytes, index says %d", len(out), rawLen)
		}
		raw = out
	default:
		return nil, fmt.Errorf("unknown chunk flags %d", flags)
	}
	if got := chunker.Sum(raw); got != id {
		return nil, fmt.Errorf("content hash mismatch (got %s)", got.Short())
	}
	return raw, nil
}
