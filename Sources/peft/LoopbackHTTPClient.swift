import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking HTTP/1.1 client for a server on 127.0.0.1, one connection per request (`Connection: close`).
/// `peft bench serve` uses it to warm the server up and to read its statistics; `wrk` makes the timed load. Kept
/// here instead of URLSession so that the `peft` binary does not link FoundationNetworking (libcurl and its TLS,
/// Kerberos and LDAP libraries), whose mappings a small address-space limit cannot spare.
struct LoopbackHTTPClient: Sendable {
    let port: Int
    /// Bytes of a response beyond which it is refused.
    var maxResponseBytes = 64 << 20

    struct Response {
        var status: Int
        var body: Data
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func send(_ method: String, _ path: String, json body: Data? = nil) throws -> Response {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            throw Failure(description: "connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        try write(fd, Data(head.utf8) + (body ?? Data()))
        let raw = try readAll(fd)
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else {
            throw Failure(description: "\(method) \(path): the response has no header end (\(raw.count) bytes)")
        }
        let header = String(decoding: raw[..<split.lowerBound], as: UTF8.self)
        let statusLine = header.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure(description: "\(method) \(path): bad status line '\(statusLine)'")
        }
        var content = Data(raw[split.upperBound...])
        if header.lowercased().contains("transfer-encoding: chunked") { content = try dechunk(content) }
        return Response(status: status, body: content)
    }

    private func write(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                #if canImport(Glibc)
                let sent = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                #else
                let sent = Darwin.send(fd, bytes.baseAddress! + offset, bytes.count - offset, 0)
                #endif
                if sent < 0 && errno == EINTR { continue }
                guard sent > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
                offset += sent
            }
        }
    }

    private func readAll(_ fd: Int32) throws -> Data {
        var result = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure(description: "recv: \(String(cString: strerror(errno)))") }
            if count == 0 { return result }
            result.append(contentsOf: buffer[..<count])
            guard result.count <= maxResponseBytes else {
                throw Failure(description: "the response exceeds \(maxResponseBytes >> 20) MiB")
            }
        }
    }

    /// The body of a `Transfer-Encoding: chunked` response.
    private func dechunk(_ data: Data) throws -> Data {
        var output = Data()
        var index = data.startIndex
        while let lineEnd = data[index...].range(of: Data("\r\n".utf8)) {
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Failure(description: "bad chunk size '\(sizeText)'")
            }
            if size == 0 { return output }
            let start = lineEnd.upperBound
            guard data.distance(from: start, to: data.endIndex) >= size + 2 else { throw Failure(description: "truncated chunk") }
            let end = data.index(start, offsetBy: size)
            output.append(data[start..<end])
            index = data.index(end, offsetBy: 2)
        }
        throw Failure(description: "chunked body without its last chunk")
    }
}
