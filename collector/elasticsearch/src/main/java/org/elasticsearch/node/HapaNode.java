/*
 * hapa-telemetry: a Node whose plugins service also loads plugin classes from the classpath
 * (the transport-netty4 module comes from Maven Central as a plain jar). Lives in
 * org.elasticsearch.node because NodeConstruction and NodeServiceProvider are package-private.
 */
package org.elasticsearch.node;

import java.util.Collection;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsService;

public final class HapaNode extends Node {

    public HapaNode(Environment environment, Collection<Class<? extends Plugin>> classpathPlugins) {
        super(NodeConstruction.prepareConstruction(environment, new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment env, Settings settings) {
                return new ClasspathPluginsService(settings, env, classpathPlugins);
            }
        }, true));
    }
}
