package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// OpenSource opens a disk image to import: a regular file or a block
// device. It never blocks: a FIFO, a character device (/dev/zero), a
// socket or a directory is refused by its type, checked on the open file
// (opened O_NONBLOCK, so a FIFO swapped in after a check cannot hang the
// import while it holds the writer lock). It returns the image's size.
func OpenSource(path string) (*os.File, int64, error) {
	if fi, err := os.Stat(path); err == nil {
		if err := checkSourceType(fi.Mode()); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkSourceType(fi.Mode())
	}
	var size int64
	if err == nil {
		size = fi.Size()
		if fi.Mode()&fs.ModeDevice != 0 {
			// A block device has no size in stat; seeking to the end tells.
			size, err = f.Seek(0, io.SeekEnd)
		}
	}
	if err == nil {
		// Reads of a regular file or block device never block anyway;
		// back to blocking mode so the runtime does not poll the fd.
		err = syscall.SetNonblock(int(f.Fd()), false)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if size == 0 {
		f.Close()
		return nil, 0, fmt.Errorf("%s: image is empty (0 bytes)", path)
	}
	return f, size, nil
}

func checkSourceType(mode fs.FileMode) error {
	switch {
	case mode.IsRegular():
		return nil
	case mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0:
		return nil // a block device
	case mode&fs.ModeCharDevice != 0:
		return errors.New("is a character device, not a disk image (import a regular file or a block device)")
	case mode&fs.ModeNamedPipe != 0:
		return errors.New("is a FIFO, not a disk image: mis reads an image at random offsets, so it needs a regular file or a block device (write the stream to a file first)")
	case mode&fs.ModeSocket != 0:
		return errors.New("is a socket, not a disk image")
	case mode.IsDir():
		return errors.New("is a directory, not a disk image")
	}
	return fmt.Errorf("is not a regular file or block device (%s)", mode.Type())
}
