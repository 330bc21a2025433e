import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An 8-bit RGB image decoded from a JPEG file by libjpeg-turbo's TurboJPEG API, loaded at run time (`dlopen` of
/// `libturbojpeg.so.0`, as Debian's `libturbojpeg0` package installs it; `PEFT_JPEG_LIBRARY` names another build).
/// Baseline and progressive JPEGs, grey or colour, become RGB; CMYK JPEGs are refused by the library.
public enum JPEGImage {
    /// Whether `bytes` start like a JPEG file (start-of-image marker, then another marker).
    public static func hasSignature(_ bytes: [UInt8]) -> Bool { bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF }

    /// Decodes JPEG bytes; `name` is used in error messages. The size is read from the header and checked against
    /// `PNGImage.maximumSide` before any pixel is decoded.
    public static func decode(_ bytes: [UInt8], name: String) throws -> PNGImage {
        func failure(_ problem: String) -> DataReaderError { DataReaderError(file: name, problem: problem) }
        guard hasSignature(bytes) else { throw failure("not a JPEG file (bad signature)") }
        let library = try TurboJPEG.shared()
        guard let handle = library.initDecompress() else { throw failure("libturbojpeg could not start a decoder") }
        defer { _ = library.destroy(handle) }
        func message() -> String { library.errorString(handle).map { String(cString: $0) } ?? "unknown error" }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer {
            library.decompressHeader(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw failure("corrupt JPEG header: \(message())") }
        guard width > 0, height > 0, Int(width) <= PNGImage.maximumSide, Int(height) <= PNGImage.maximumSide else {
            throw failure("JPEG size \(width) x \(height) is outside 1...\(PNGImage.maximumSide) pixels per side")
        }
        var rgb = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let decoded = bytes.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { target in
                // TJPF_RGB = 0; pitch 0 = width * 3; no flags.
                library.decompress(handle, source.baseAddress, UInt(source.count), target.baseAddress, width, 0, height, 0, 0)
            }
        }
        guard decoded == 0 else { throw failure("corrupt or truncated JPEG: \(message())") }
        return PNGImage(width: Int(width), height: Int(height), rgb: rgb)
    }
}

/// The few TurboJPEG functions used (the API of libjpeg-turbo 1.x-3.x, kept in 3.x), looked up once.
final class TurboJPEG: @unchecked Sendable {
    typealias InitDecompress = @convention(c) () -> UnsafeMutableRawPointer?
    typealias DecompressHeader = @convention(c) (UnsafeMutableRawPointer, UnsafePointer<UInt8>?, UInt, UnsafeMutablePointer<Int32>,
                                                 UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    typealias Decompress = @convention(c) (UnsafeMutableRawPointer, UnsafePointer<UInt8>?, UInt, UnsafeMutablePointer<UInt8>?,
                                           Int32, Int32, Int32, Int32, Int32) -> Int32
    typealias Destroy = @convention(c) (UnsafeMutableRawPointer) -> Int32
    typealias ErrorString = @convention(c) (UnsafeMutableRawPointer?) -> UnsafePointer<CChar>?

    let initDecompress: InitDecompress
    let decompressHeader: DecompressHeader
    let decompress: Decompress
    let destroy: Destroy
    let errorString: ErrorString

    private init(initDecompress: InitDecompress, decompressHeader: DecompressHeader, decompress: Decompress,
                 destroy: Destroy, errorString: ErrorString) {
        self.initDecompress = initDecompress
        self.decompressHeader = decompressHeader
        self.decompress = decompress
        self.destroy = destroy
        self.errorString = errorString
    }

    private static let loaded: Result<TurboJPEG, DataReaderError> = {
        let names = [ProcessInfo.processInfo.environment["PEFT_JPEG_LIBRARY"], "libturbojpeg.so.0", "libturbojpeg.so",
                     "libturbojpeg.0.dylib"].compactMap { $0 }
        for name in names {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let initDecompress = dlsym(handle, "tjInitDecompress"), let header = dlsym(handle, "tjDecompressHeader3"),
                  let decompress = dlsym(handle, "tjDecompress2"), let destroy = dlsym(handle, "tjDestroy"),
                  let errorString = dlsym(handle, "tjGetErrorStr2") else { continue }
            return .success(TurboJPEG(initDecompress: unsafeBitCast(initDecompress, to: InitDecompress.self),
                                      decompressHeader: unsafeBitCast(header, to: DecompressHeader.self),
                                      decompress: unsafeBitCast(decompress, to: Decompress.self),
                                      destroy: unsafeBitCast(destroy, to: Destroy.self),
                                      errorString: unsafeBitCast(errorString, to: ErrorString.self)))
        }
        return .failure(DataReaderError(file: names.joined(separator: ", "),
                                        problem: "libturbojpeg not found; install it with `apt-get install libturbojpeg0` (or set PEFT_JPEG_LIBRARY)"))
    }()

    static func shared() throws -> TurboJPEG { try loaded.get() }
}
