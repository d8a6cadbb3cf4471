/*
 * hapa-telemetry: run one Elasticsearch node on 127.0.0.1 until the JVM is told to stop.
 *
 * Environment: HAPA_ES_HOME (state dir: data, logs, config; default ./.stack/elasticsearch),
 * HAPA_STACK_ES_PORT (HTTP, default 9200), HAPA_STACK_ES_TRANSPORT_PORT (default 9300),
 * HAPA_ES_CLUSTER (cluster name, default hapa-stack), HAPA_ES_NODE_NAME (default hapa-es-0).
 *
 * Cluster mode (the gateway topology of scripts/stack): set HAPA_ES_SEED_HOSTS to the other
 * nodes' transport addresses (comma-separated, e.g. 127.0.0.1:9300,127.0.0.1:9301) and
 * HAPA_ES_INITIAL_MASTERS to the master-eligible node names that bootstrap the cluster;
 * HAPA_ES_ROLES (comma-separated, e.g. "data,ingest") narrows the node's roles. Unset:
 * one node with discovery.type single-node, as before.
 */
package org.hapa.es;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.HapaNode;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.netty4.Netty4Plugin;

public final class EsMain {

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? dflt : v;
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(env("HAPA_ES_HOME", ".stack/elasticsearch")).toAbsolutePath();
        Path config = home.resolve("config");
        for (String d : List.of("config", "data", "logs", "modules", "plugins")) {
            Files.createDirectories(home.resolve(d));
        }
        String nodeName = env("HAPA_ES_NODE_NAME", "hapa-es-0");
        String seeds = env("HAPA_ES_SEED_HOSTS", "");
        Settings.Builder builder = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", env("HAPA_ES_CLUSTER", "hapa-stack"))
                .put("node.name", nodeName)
                .put("network.host", "127.0.0.1")
                .put("http.port", env("HAPA_STACK_ES_PORT", "9200"))
                .put("transport.port", env("HAPA_STACK_ES_TRANSPORT_PORT", "9300"))
                .put("action.auto_create_index", "true")
                .put("cluster.routing.allocation.disk.threshold_enabled", "false");
        if (seeds.isBlank()) {
            builder.put("discovery.type", "single-node");
        } else {
            builder.putList("discovery.seed_hosts", List.of(seeds.split(",")));
            String masters = env("HAPA_ES_INITIAL_MASTERS", "");
            if (!masters.isBlank()) {
                builder.putList("cluster.initial_master_nodes", List.of(masters.split(",")));
            }
        }
        String roles = env("HAPA_ES_ROLES", "");
        if (!roles.isBlank()) {
            builder.putList("node.roles", List.of(roles.split(",")));
        }
        Settings settings = builder.build();
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), config, () -> nodeName);
        LogConfigurator.configureWithoutConfig(environment.settings());

        Node node = new HapaNode(environment, List.of(Netty4Plugin.class, RootInfoPlugin.class));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "hapa-es-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            // a half-started node keeps non-daemon threads alive: exit instead of lingering
            e.printStackTrace();
            System.err.println("hapa-es: node failed to start: " + e);
            Runtime.getRuntime().halt(1);
        }
        System.out.println("hapa-es: node started, http on 127.0.0.1:" + env("HAPA_STACK_ES_PORT", "9200"));
        stopped.await();
    }
}
