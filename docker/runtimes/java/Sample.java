// Compiled once at image build time with -XX:ArchiveClassesAtExit, so that javac's own
// classes for what typical programs use (generics, lambdas, records, switch expressions,
// streams, inner classes, text blocks, a warning) land in its class-data sharing archive.
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.util.*;
import java.util.function.Function;
import java.util.stream.Collectors;

public class Sample {
    record Point(int x, int y) {}

    enum Color { RED, GREEN }

    interface Shape { double area(); }

    static <T extends Comparable<T>> T max(List<T> items) {
        return Collections.max(items);
    }

    @SuppressWarnings("unused")
    private static final class Box<T> {
        private T value;
    }

    public static void main(String[] args) throws IOException {
        var in = new BufferedReader(new InputStreamReader(System.in));
        String line = in.readLine();
        Scanner scanner = new Scanner("1 2 3");
        int[] numbers = {scanner.nextInt(), 5, 4};
        Arrays.sort(numbers);
        List<Integer> list = new ArrayList<>();
        for (int n : numbers) list.add(n * 2);
        Map<String, Integer> counts = new HashMap<>();
        counts.merge(line == null ? "" : line, 1, Integer::sum);
        Function<Integer, String> show = n -> "n=" + n;
        String joined = list.stream().map(show).collect(Collectors.joining(", "));
        Shape circle = () -> Math.PI;
        Object o = new Point(1, 2);
        String kind = switch (Color.values().length) {
            case 2 -> "two";
            default -> "many";
        };
        if (o instanceof Point p && p.x() < p.y()) {
            System.out.printf("%s %s %.2f %d%n", joined, kind, circle.area(), max(list));
        }
        String text = """
            done
            """;
        List raw = new ArrayList(); // an unchecked warning: javac's notes are archived too
        raw.add(text);
        System.out.println(raw + " " + counts + new StringBuilder("!").reverse());
        try {
            throw new IllegalStateException("x");
        } catch (IllegalStateException | IllegalArgumentException e) {
            System.err.println(e.getMessage().length());
        }
    }
}
