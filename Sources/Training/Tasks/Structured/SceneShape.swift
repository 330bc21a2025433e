/// The kinds of filled shape the structured tasks draw.
public enum SceneShapeKind: String, Sendable, CaseIterable {
    /// A square whose corners lie on the circle of radius `size`.
    case square
    /// An ellipse with semi-axes `size` (along the orientation) and `size * aspect`.
    case ellipse
    /// An equilateral triangle whose corners lie on the circle of radius `size`; one corner points along the
    /// orientation.
    case triangle
    /// An isosceles triangle of height `size` and base `size * aspect`, its apex pointing along the orientation.
    /// Its centre is its centroid: the apex is `2/3 size` ahead of it, the base `1/3 size` behind.
    case isoscelesTriangle
}

/// One filled shape of a ``GreyScene``, in pixel coordinates (x to the right, y downwards, (0, 0) the top-left
/// corner of the top-left pixel). Its centre is its area centroid.
public struct SceneShape: Sendable, Equatable {
    /// What is drawn.
    public var kind: SceneShapeKind
    /// Centre x in pixels.
    public var centreX: Double
    /// Centre y in pixels (downwards).
    public var centreY: Double
    /// Circumradius (square, ellipse, triangle) or height (isosceles triangle), in pixels.
    public var size: Double
    /// Minor-to-major axis ratio (ellipse) or base-to-height ratio (isosceles triangle); ignored otherwise.
    public var aspect: Double
    /// Direction the shape points in, in radians counter-clockwise from the +x axis as seen on screen.
    public var orientation: Double
    /// Grey level of the fill, in [0, 1].
    public var brightness: Float

    /// Creates a shape.
    public init(kind: SceneShapeKind, centreX: Double, centreY: Double, size: Double, aspect: Double = 1,
                orientation: Double = 0, brightness: Float = 1) {
        self.kind = kind
        self.centreX = centreX
        self.centreY = centreY
        self.size = size
        self.aspect = aspect
        self.orientation = orientation
        self.brightness = brightness
    }

    /// Radius around the centre of a circle that holds the whole shape.
    public var boundingRadius: Double {
        switch kind {
        case .square, .triangle: return size
        case .ellipse: return size * max(1, aspect)
        case .isoscelesTriangle:
            let back = size / 3, halfBase = size * aspect / 2
            return max(2 * size / 3, (back * back + halfBase * halfBase).squareRoot())
        }
    }

    /// A point-in-shape test prepared for fast repeated calls.
    func insideTest() -> ShapeInsideTest { ShapeInsideTest(self) }
}

/// Decides whether points lie inside one ``SceneShape``: the point is turned into the shape's own frame
/// (u along the orientation, v to its left) and tested against an ellipse or a convex polygon.
struct ShapeInsideTest {
    private let centreX: Double, centreY: Double
    private let cosine: Double, sine: Double
    private let ellipseAxes: (Double, Double)?
    private let polygon: [(u: Double, v: Double)]

    init(_ shape: SceneShape) {
        centreX = shape.centreX
        centreY = shape.centreY
        (sine, cosine) = ExactTrigonometry.sinCos(shape.orientation)
        let r = shape.size
        switch shape.kind {
        case .ellipse:
            ellipseAxes = (r, r * shape.aspect)
            polygon = []
        case .square:
            let half = r * 0.707_106_781_186_547_5
            ellipseAxes = nil
            polygon = [(half, -half), (half, half), (-half, half), (-half, -half)]
        case .triangle:
            let back = r / 2, side = r * 0.866_025_403_784_438_6
            ellipseAxes = nil
            polygon = [(r, 0), (-back, side), (-back, -side)]
        case .isoscelesTriangle:
            let halfBase = r * shape.aspect / 2
            ellipseAxes = nil
            polygon = [(2 * r / 3, 0), (-r / 3, halfBase), (-r / 3, -halfBase)]
        }
    }

    /// Whether the pixel-coordinate point (x, y) is inside (boundary included).
    @inline(__always)
    func contains(x: Double, y: Double) -> Bool {
        let dx = x - centreX, up = centreY - y
        let u = dx * cosine + up * sine
        let v = up * cosine - dx * sine
        if let (a, b) = ellipseAxes { return (u * u) / (a * a) + (v * v) / (b * b) <= 1 }
        // Vertices run counter-clockwise: inside means left of (or on) every edge.
        var previous = polygon[polygon.count - 1]
        for vertex in polygon {
            let cross = (vertex.u - previous.u) * (v - previous.v) - (vertex.v - previous.v) * (u - previous.u)
            if cross < 0 { return false }
            previous = vertex
        }
        return true
    }
}
