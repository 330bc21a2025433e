import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An 8-bit RGB image decoded from a PNG file by libpng, loaded at run time (`dlopen` of `libpng16.so.16`, as
/// Debian's `libpng16-16` package installs it; `PEFT_PNG_LIBRARY` names another build).
///
/// Decoding uses libpng 1.6's simplified API (`png_image_begin_read_from_memory`, `png_image_finish_read`), which
/// handles libpng's errors itself (no setjmp here). Every colour type becomes RGB: grey is replicated, palettes are
/// expanded, and an alpha channel is composited onto black (the background of every image task here).
public struct PNGImage: Sendable {
    public let width: Int
    public let height: Int
    /// Interleaved R, G, B bytes, row-major (`width * height * 3`).
    public let rgb: [UInt8]

    /// The largest side accepted, checked from the header before any pixel is decoded (4096: 48 MB of RGB).
    public static let maximumSide = 4096

    /// The eight bytes every PNG file starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Whether `bytes` start with the PNG signature.
    public static func hasSignature(_ bytes: [UInt8]) -> Bool { bytes.starts(with: signature) }

    /// Decodes the PNG file at `url`; errors name the file.
    public static func load(_ url: URL) throws -> PNGImage {
        try decode(DataFileBytes.read(url), name: url.path)
    }

    /// Decodes PNG bytes; `name` is used in error messages.
    public static func decode(_ bytes: [UInt8], name: String) throws -> PNGImage {
        func failure(_ problem: String) -> DataReaderError { DataReaderError(file: name, problem: problem) }
        guard hasSignature(bytes) else { throw failure("not a PNG file (bad signature)") }
        let library = try LibPNG.shared()
        // png_image (png.h, libpng 1.6): opaque pointer, then version, width, height, format, flags,
        // colormap_entries, warning_or_error (png_uint_32 each), then char message[64].
        let control = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 8)
        defer { library.free(control); control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
        control.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)  // PNG_IMAGE_VERSION
        func message() -> String {
            let text = control.advanced(by: 36).assumingMemoryBound(to: CChar.self)
            text[63] = 0
            return String(cString: text)
        }
        let began = bytes.withUnsafeBytes { library.beginRead(control, $0.baseAddress, $0.count) }
        guard began != 0 else { throw failure("corrupt PNG: \(message())") }
        let width = Int(control.load(fromByteOffset: 12, as: UInt32.self))
        let height = Int(control.load(fromByteOffset: 16, as: UInt32.self))
        guard width > 0, height > 0, width <= maximumSide, height <= maximumSide else {
            throw failure("PNG size \(width) x \(height) is outside 1...\(maximumSide) pixels per side (the models run at up to \(maximumSide / 4) px)")
        }
        control.storeBytes(of: UInt32(2), toByteOffset: 20, as: UInt32.self)  // PNG_FORMAT_RGB
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        var black: (UInt8, UInt8, UInt8) = (0, 0, 0)  // png_color, used when removing alpha
        let finished = rgb.withUnsafeMutableBytes { buffer in
            withUnsafeMutableBytes(of: &black) { library.finishRead(control, $0.baseAddress, buffer.baseAddress!, Int32(width * 3), nil) }
        }
        guard finished != 0 else { throw failure("corrupt or truncated PNG: \(message())") }
        return PNGImage(width: width, height: height, rgb: rgb)
    }

    /// Encodes 8-bit RGB pixels (`rgb`: width x height x 3, row by row) as PNG bytes (libpng, default compression).
    public static func encode(width: Int, height: Int, rgb: [UInt8]) throws -> [UInt8] {
        guard width > 0, height > 0, width <= maximumSide, height <= maximumSide, rgb.count == width * height * 3 else {
            throw DataReaderError(file: "PNG", problem: "cannot encode \(rgb.count) bytes as a \(width) x \(height) RGB image")
        }
        let library = try LibPNG.shared()
        guard let write = library.writeToMemory else {
            throw DataReaderError(file: "libpng", problem: "png_image_write_to_memory is missing (libpng older than 1.6.29)")
        }
        let control = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 8)
        defer { control.deallocate() }
        func reset() {
            control.initializeMemory(as: UInt8.self, repeating: 0, count: 128)
            control.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)  // PNG_IMAGE_VERSION
            control.storeBytes(of: UInt32(width), toByteOffset: 12, as: UInt32.self)
            control.storeBytes(of: UInt32(height), toByteOffset: 16, as: UInt32.self)
            control.storeBytes(of: UInt32(2), toByteOffset: 20, as: UInt32.self)  // PNG_FORMAT_RGB
        }
        reset()
        var size = 0
        // First call: the size needed; second: the bytes.
        guard rgb.withUnsafeBytes({ write(control, nil, &size, 0, $0.baseAddress, Int32(width * 3), nil) }) != 0, size > 0 else {
            throw DataReaderError(file: "PNG", problem: "libpng could not size a \(width) x \(height) image")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        reset()
        let written = bytes.withUnsafeMutableBytes { out in
            rgb.withUnsafeBytes { write(control, out.baseAddress, &size, 0, $0.baseAddress, Int32(width * 3), nil) }
        }
        guard written != 0 else { throw DataReaderError(file: "PNG", problem: "libpng could not encode a \(width) x \(height) image") }
        return Array(bytes.prefix(size))
    }
}

/// The few libpng functions used, looked up once.
final class LibPNG: @unchecked Sendable {
    typealias BeginRead = @convention(c) (UnsafeMutableRawPointer, UnsafeRawPointer?, Int) -> Int32
    typealias FinishRead = @convention(c) (UnsafeMutableRawPointer, UnsafeRawPointer?, UnsafeMutableRawPointer, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias Free = @convention(c) (UnsafeMutableRawPointer) -> Void
    typealias WriteToMemory = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>, Int32,
                                              UnsafeRawPointer?, Int32, UnsafeRawPointer?) -> Int32

    let beginRead: BeginRead
    let finishRead: FinishRead
    let free: Free
    /// Present from libpng 1.6.29 on.
    let writeToMemory: WriteToMemory?

    private init(beginRead: BeginRead, finishRead: FinishRead, free: Free, writeToMemory: WriteToMemory?) {
        self.beginRead = beginRead
        self.finishRead = finishRead
        self.free = free
        self.writeToMemory = writeToMemory
    }

    private static let loaded: Result<LibPNG, DataReaderError> = {
        let names = [ProcessInfo.processInfo.environment["PEFT_PNG_LIBRARY"], "libpng16.so.16", "libpng16.so",
                     "libpng16.16.dylib"].compactMap { $0 }
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let begin = dlsym(handle, "png_image_begin_read_from_memory"),
                  let finish = dlsym(handle, "png_image_finish_read"), let free = dlsym(handle, "png_image_free") else {
                continue
            }
            return .success(LibPNG(beginRead: unsafeBitCast(begin, to: BeginRead.self),
                                   finishRead: unsafeBitCast(finish, to: FinishRead.self),
                                   free: unsafeBitCast(free, to: Free.self),
                                   writeToMemory: dlsym(handle, "png_image_write_to_memory").map { unsafeBitCast($0, to: WriteToMemory.self) }))
        }
        return .failure(DataReaderError(file: names.joined(separator: ", "),
                                        problem: "libpng 1.6 not found; install it with `apt-get install libpng16-16` (or set PEFT_PNG_LIBRARY)"))
    }()

    static func shared() throws -> LibPNG { try loaded.get() }
}
